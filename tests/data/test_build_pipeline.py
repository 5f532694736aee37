"""The builder's pipeline: the next batches' image work and translations are under way while a batch is
written, pictures named by batches in flight together are prepared once, and the output is the same
bytes whatever the workers and the batch size."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from concurrent.futures import Future
from pathlib import Path

import pytest
import yaml

from qilin_med_vl.cli import main
from qilin_med_vl.data.build import InlineExecutor, build
from qilin_med_vl.data.build_config import load_build_config
from qilin_med_vl.data.translation import Translation

from .data_fixtures import picture
from .fake_openai_server import FakeChatServer

ROWS = 12  # per source; rows 2k and 2k+1 name the same pictures
KEY_ENV = "QILIN_TEST_TRANSLATION_KEY"


def write_shared_pictures_world(root: Path) -> Path:
    """PMC-OA captions and PMC-CaseReport cases in pairs that name the same pictures (one figure; two
    panels, concatenated), every text different; returns the build config."""
    (root / "pmc_oa/images").mkdir(parents=True)
    (root / "pmc_case_report/figures").mkdir(parents=True)
    with open(root / "pmc_oa/pmc_oa.jsonl", "w", encoding="utf-8") as oa:
        for n in range(ROWS):
            name = f"PMC{n // 2}_F1.jpg"
            picture((120 + n // 2, 96), n // 2).save(root / "pmc_oa/images" / name, quality=90)
            caption = f"Axial CT number {n} shows a lesion of {n + 3} mm in liver segment {n % 8 + 1}."
            oa.write(
                json.dumps({"image": name, "caption": caption, "pmcid": f"PMC{n}", "url_name": name}) + "\n"
            )
    with open(root / "pmc_case_report/case_report.jsonl", "w", encoding="utf-8") as cases:
        for n in range(ROWS):
            panels = [f"PMC9{n // 2}_a.jpg", f"PMC9{n // 2}_b.jpg"]
            for number, name in enumerate(panels):
                picture((200, 300 + 20 * number), n + number).save(root / "pmc_case_report/figures" / name)
            case = {
                "PMC_id": f"PMC9{n}",
                "context": f"Patient {n}, aged {30 + n}, presented with abdominal pain for {n + 2} days.",
                "inline": f"Ultrasound of patient {n} showed a cyst of {n + 10} mm (Figure 1A and 1B).",
                "question": f"What did the ultrasound of patient {n} show?",
                "answer": f"A cyst of {n + 10} mm.",
                "img_ref": repr(panels),
            }
            cases.write(json.dumps(case) + "\n")
    config = {
        "out": "out",
        "seed": 3,
        "batch_size": 1,
        "sources": {
            "pmc_oa": {"records": "pmc_oa/pmc_oa.jsonl", "images": "pmc_oa/images"},
            "pmc_case_report": {
                "records": "pmc_case_report/case_report.jsonl",
                "images": "pmc_case_report/figures",
            },
        },
        "translator": {"backend": "none"},
    }
    (root / "build.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root / "build.yaml"


@pytest.fixture
def shared_pictures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_shared_pictures_world(tmp_path)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


class RecordingExecutor(InlineExecutor):
    """Runs image work at once in this process and notes, per task, the rows' pictures it prepares."""

    def __init__(self, events: list) -> None:
        self.events = events

    def submit(self, fn, /, *args, **kwargs) -> Future:
        (tasks,) = args
        for task in tasks:
            self.events.append(("images", (task.source, task.names)))
        return super().submit(fn, *args, **kwargs)


class NotedAnswer(Future):
    """A translation answer, ready at once, that notes when the builder reads it (to write its batch)."""

    def __init__(self, events: list, texts: list[str]) -> None:
        super().__init__()
        self.events, self.texts = events, texts
        self.set_result([Translation(source=text, text=f"译:{text}") for text in texts])

    def result(self, timeout=None):
        self.events.append(("read", tuple(self.texts)))
        return super().result(timeout)


class NotingTranslator:
    def __init__(self, events: list) -> None:
        self.events = events

    def submit_batch(self, texts):
        self.events.append(("translate", tuple(texts)))
        return NotedAnswer(self.events, list(texts))

    def translate_batch(self, texts):
        return self.submit_batch(texts).result()

    def close(self) -> None:
        pass


def test_workers_write_the_same_bytes_when_adjacent_batches_share_pictures(shared_pictures):
    def run(out: str, *extra: str) -> dict[str, bytes]:
        assert main(["data", "build", "--config", "build.yaml", "--out", out, "--no-progress", *extra]) == 0
        return tree_bytes(Path(out))

    parallel = run("parallel", "--workers", "2")  # batch_size 1: every batch shares its pictures
    assert parallel == run("serial", "--workers", "1")
    assert parallel == run("one_batch", "--workers", "1", "--batch-size", "64")
    assert (
        len([name for name in parallel if name.startswith("images/pmc_case_report/composite/")]) == ROWS // 2
    )
    kept = json.loads(Path("parallel/manifest.json").read_text())["totals"]["kept"]
    assert kept == 3 * ROWS  # a caption, and a case report's two stages, per row


def recorded_build(batch_size: int | None = None) -> list:
    """Build build.yaml through the `build` API with a translator and an executor that note each call."""
    events: list = []
    config = load_build_config(Path("build.yaml"))
    if batch_size is not None:
        config = dataclasses.replace(config, batch_size=batch_size)
    build(
        config,
        Path("out"),
        progress=False,
        translator=NotingTranslator(events),
        executor=RecordingExecutor(events),
    )
    return events


def test_a_picture_named_by_batches_in_flight_together_is_prepared_once(shared_pictures):
    events = recorded_build()
    prepared = Counter(key for kind, key in events if kind == "images")
    assert len(prepared) == ROWS  # one picture per pair of rows, per source
    assert set(prepared.values()) == {1}


def test_the_next_batches_are_under_way_before_a_batch_is_written(shared_pictures):
    # batch_size 2: each batch is one pair of rows, so each prepares its own pictures and sends its texts
    events = recorded_build(batch_size=2)
    batches = 2 * ROWS // 2

    def first(kind: str) -> list[int]:
        """The position in `events` of the first event of `kind` of each batch, in batch order."""
        positions = [position for position, (noted, _) in enumerate(events) if noted == kind]
        assert len(positions) == batches
        return positions

    images, translations, reads = first("images"), first("translate"), first("read")
    for batch in range(batches - 1):
        assert translations[batch + 1] < reads[batch]  # the next batch's requests are in flight
    for batch in range(batches - 2):
        assert images[batch + 2] < reads[batch]  # and the image work of the one after is sent


def test_translated_batches_in_flight_together_keep_the_concurrency_bound(shared_pictures, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k")
    with FakeChatServer(latency_s=0.02) as server:
        outputs = []
        for workers in ("2", "1"):
            command = ["data", "build", "--config", "build.yaml", "--out", f"w{workers}", "--no-progress"]
            command += ["--workers", workers, "--translator", "openai", "--base-url", server.base_url]
            command += ["--api-key-env", KEY_ENV, "--translator-option", "concurrency=2"]
            assert main(command) == 0
            outputs.append(
                {path.name: path.read_bytes() for path in sorted(Path(f"w{workers}").glob("*.jsonl"))}
            )
        assert server.max_in_flight == 2
        assert set(server.requests_per_source().values()) == {2}  # each text once per build
    assert outputs[0] == outputs[1]
