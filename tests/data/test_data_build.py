"""`qilin data build` on the public-format fixtures: accounting, composites, templates, determinism,
shards, translation hand-off and resuming."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from qilin_med_vl.cli import main
from qilin_med_vl.data.build import build
from qilin_med_vl.data.build_config import load_build_config, parse_build_config
from qilin_med_vl.data.translation import Translation, TranslatorConfig
from qilin_med_vl.data.translation.config import answered

KEPT = "kept"
# The fate of every candidate of the fixtures (see tests/data/fixtures): record id -> reason or KEPT.
EXPECTED = {
    "pmc_oa-000000000-alignment": KEPT,
    "pmc_oa-000000001-alignment": "text_too_short",  # empty caption
    "pmc_oa-000000002-alignment": "image_missing",
    "pmc_oa-000000003-alignment": "image_unreadable",  # text bytes named .jpg
    "pmc_oa-000000004-alignment": "image_truncated",  # PNG cut in half
    "pmc_oa-000000005-alignment": "image_truncated",  # JPEG cut at 60 %
    "pmc_oa-000000006-alignment": "image_too_small",  # 16 x 16
    "pmc_oa-000000007-alignment": "image_too_large",  # header declares 10,000 x 10,000
    "pmc_oa-000000008-alignment": "malformed_record",  # invalid JSON line
    "pmc_oa-000000009-alignment": "malformed_record",  # no "image" field
    "pmc_oa-000000010-alignment": KEPT,
    "pmc_oa-000000011-alignment": "image_too_large",  # header declares 60,000 x 60,000
    **{
        f"pmc_case_report-00000000{row}-{stage}": KEPT
        for row in range(5)
        for stage in ("alignment", "instruction")
    },
    **{
        f"pmc_case_report-00000000{row}-{stage}": "too_many_images"
        for row in (5, 6)
        for stage in ("alignment", "instruction")
    },
    "pmc_case_report-000000007-alignment": "no_image",
    "pmc_case_report-000000007-instruction": "no_image",
    "pmc_case_report-000000008-alignment": "malformed_record",  # img_ref list literal not closed
    "pmc_case_report-000000008-instruction": "malformed_record",
    "pmc_case_report-000000009-alignment": "image_unreadable",  # one of two panels corrupt
    "pmc_case_report-000000009-instruction": "image_unreadable",
    "pmc_case_report-000000010-alignment": KEPT,
    "pmc_case_report-000000010-instruction": "text_too_short",  # question "Why?"
    "pmc_case_report-000000011-alignment": "text_too_short",  # empty inline
    "pmc_case_report-000000011-instruction": KEPT,
    "pmc_case_report-000000012-alignment": "malformed_record",  # no "answer" field
    "pmc_case_report-000000012-instruction": "malformed_record",
    "pmc_vqa-000000000-instruction": KEPT,
    "pmc_vqa-000000001-instruction": KEPT,
    "pmc_vqa-000000002-instruction": KEPT,
    "pmc_vqa-000000003-instruction": KEPT,
    "pmc_vqa-000000004-instruction": "image_missing",
    "pmc_vqa-000000005-instruction": KEPT,  # "Size?" is exactly the 5-character minimum
    "pmc_vqa-000000006-instruction": "malformed_record",  # row cut short
    "pmc_vqa-000000007-instruction": KEPT,  # v2 file
    "pmc_vqa-000000008-instruction": KEPT,
}
PROMPTS = json.loads(
    (Path(__file__).parents[2] / "src/qilin_med_vl/resources/prompt_templates.json").read_text("utf-8")
)


def run_build(*extra: str, out: str = "out", config: str = "build.yaml") -> Path:
    assert main(["data", "build", "--config", config, "--out", out, "--no-progress", *extra]) == 0
    return Path(out)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def outcomes(out: Path) -> dict[str, str]:
    result = {}
    for stage in ("alignment", "instruction"):
        for path in sorted(out.glob(f"{stage}-*.jsonl")):
            for record in read_jsonl(path):
                assert record["meta"]["stage"] == stage
                result[record["id"]] = KEPT
    for path in sorted(out.glob("dropped-*.jsonl")):
        for entry in read_jsonl(path):
            assert entry["id"] not in result
            result[entry["id"]] = entry["reason"]
    return result


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def write_config(changes: dict, name: str) -> str:
    data = yaml.safe_load(Path("build.yaml").read_text())
    for section, values in changes.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    Path(name).write_text(yaml.safe_dump(data))
    return name


def test_every_record_is_accounted_for_with_its_reason(fixture_workspace):
    out = run_build()
    assert outcomes(out) == EXPECTED
    manifest = json.loads((out / "manifest.json").read_text())
    expected_counts: dict = {}
    for record_id, fate in EXPECTED.items():
        source, _, stage = record_id.split("-")
        entry = expected_counts.setdefault(source, {}).setdefault(
            stage, {"read": 0, "kept": 0, "dropped": Counter()}
        )
        entry["read"] += 1
        if fate == KEPT:
            entry["kept"] += 1
        else:
            entry["dropped"][fate] += 1
    for source, stages in expected_counts.items():
        for stage, entry in stages.items():
            written = manifest["sources"][source][stage]
            assert written["read"] == entry["read"]
            assert written["kept"] == entry["kept"]
            assert written["dropped"] == dict(entry["dropped"])
            assert written["kept"] + sum(written["dropped"].values()) == written["read"]
    totals = manifest["totals"]
    assert totals["read"] == len(EXPECTED) == totals["kept"] + sum(totals["dropped"].values())
    assert manifest["rows"] == {"pmc_oa": 12, "pmc_case_report": 13, "pmc_vqa": 9}
    # every kept record's picture exists and loads; no picture comes from a >4-image row
    for stage in ("alignment", "instruction"):
        for record in read_jsonl(out / f"{stage}-00000-of-00001.jsonl"):
            assert len(record["meta"]["source_images"]) <= 4
            with Image.open(out / "images" / record["image"]) as image:
                image.load()


def test_composites_have_the_documented_orientation(fixture_workspace):
    out = run_build()
    records = {r["id"]: r for r in read_jsonl(out / "alignment-00000-of-00001.jsonl")}
    # row 1: two tall panels side by side at the smaller height; row 2: two wide strips stacked at
    # the smaller width; row 3: (400x300, 200x200, 300x500) -> row ratio 2.93 beats column 1/0.29
    # -> horizontal at height 200: 267 + 200 + 120; row 4: a 5:1 strip among three near-squares ->
    # vertical at width 240: 180 + 320 + 240 + 48.
    expected = {
        1: ("horizontal", (400, 600)),
        2: ("vertical", (600, 400)),
        3: ("horizontal", (587, 200)),
        4: ("vertical", (240, 788)),
    }
    for row, (layout, size) in expected.items():
        record = records[f"pmc_case_report-00000000{row}-alignment"]
        assert record["meta"]["layout"] == layout
        assert record["image"].startswith("pmc_case_report/composite/")
        with Image.open(out / "images" / record["image"]) as image:
            assert image.size == size
    # both stages of a row show the same picture
    instruction = {r["id"]: r for r in read_jsonl(out / "instruction-00000-of-00001.jsonl")}
    assert (
        instruction["pmc_case_report-000000001-instruction"]["image"]
        == records["pmc_case_report-000000001-alignment"]["image"]
    )
    # single images are the original bytes
    single = records["pmc_oa-000000000-alignment"]
    assert single["image"] == "pmc_oa/PMC100_F1.jpg"
    assert (out / "images" / single["image"]).read_bytes() == Path("pmc_oa/images/PMC100_F1.jpg").read_bytes()


def test_records_use_the_paper_templates_in_llava_format(fixture_workspace):
    out = run_build()
    pools = {stage: [entry["zh"] for entry in PROMPTS[stage]] for stage in ("alignment", "instruction")}
    seen = Counter()
    for stage in ("alignment", "instruction"):
        for record in read_jsonl(out / f"{stage}-00000-of-00001.jsonl"):
            assert list(record) == ["id", "image", "conversations", "meta"]
            human, gpt = record["conversations"]
            assert (human["from"], gpt["from"]) == ("human", "gpt")
            template = pools[stage][record["meta"]["template"]]
            if stage == "alignment":
                assert human["value"] == template
            else:
                turn, start, end = record["meta"]["spans"]["question"]
                question = human["value"][start:end]
                assert human["value"] == template.replace("<question>", question)
            assert human["value"].count("<image>") == 1 and "<image>" not in gpt["value"]
            seen[stage] += 1
    assert seen == Counter(key.rsplit("-", 1)[1] for key, fate in EXPECTED.items() if fate == KEPT)
    vqa = {
        r["id"]: r
        for r in read_jsonl(out / "instruction-00000-of-00001.jsonl")
        if r["meta"]["source"] == "pmc_vqa"
    }

    def question_answer(record_id):
        record = vqa[record_id]
        turn, start, end = record["meta"]["spans"]["question"]
        return record["conversations"][0]["value"][start:end], record["conversations"][1]["value"]

    # CSV quoting survives: quotes, commas and a newline inside fields
    assert question_answer("pmc_vqa-000000002-instruction") == (
        'What does the "arrow" point to?',
        'A "mass", likely benign',
    )
    assert question_answer("pmc_vqa-000000003-instruction") == ("What is seen\nin the axial MRI?", "Edema")
    # v2 file: Answer holds the letter; the open answer is that choice's text
    assert question_answer("pmc_vqa-000000007-instruction") == ("Which organ has the lesion?", "Right kidney")
    # case report alignment: inline, then context
    case = {r["id"]: r for r in read_jsonl(out / "alignment-00000-of-00001.jsonl")}[
        "pmc_case_report-000000000-alignment"
    ]
    assert case["conversations"][1]["value"] == (
        "Contrast CT revealed a heterogeneous renal mass (Figure 1).\n"
        "A 54-year-old man presented with flank pain. Laboratory tests showed haematuria."
    )


def test_choice_format_lists_the_choices_and_answers_with_the_letter(fixture_workspace):
    config = write_config({"templates": {"vqa_format": "choice"}}, "choice.yaml")
    out = run_build(config=config)
    records = {r["id"]: r for r in read_jsonl(out / "instruction-00000-of-00001.jsonl")}
    record = records["pmc_vqa-000000003-instruction"]
    turn, start, end = record["meta"]["spans"]["question"]
    assert record["conversations"][0]["value"][start:end] == (
        "What is seen\nin the axial MRI?\nA. Tumor\nB. Edema\nC. Bleeding\nD. Infarct"
    )
    assert record["conversations"][1]["value"] == "B. Edema"
    assert records["pmc_vqa-000000007-instruction"]["conversations"][1]["value"] == "C. Right kidney"


def test_same_seed_gives_byte_identical_output_whatever_the_workers(fixture_workspace):
    first = tree_bytes(run_build(out="first"))
    assert tree_bytes(run_build(out="second")) == first
    assert tree_bytes(run_build("--workers", "2", out="parallel")) == first
    assert tree_bytes(run_build("--batch-size", "1", out="unbatched")) == first
    other_seed = tree_bytes(run_build("--seed", "8", out="other"))
    assert other_seed["alignment-00000-of-00001.jsonl"] != first["alignment-00000-of-00001.jsonl"]


def test_shards_together_equal_the_whole_build(fixture_workspace):
    whole = run_build(out="whole")
    run_build("--shard", "0/2", out="sharded")
    assert not Path("sharded/manifest.json").exists()  # only one of two shards is done
    run_build("--shard", "1/2", out="sharded")
    merged = json.loads(Path("sharded/manifest.json").read_text())
    full = json.loads((whole / "manifest.json").read_text())
    assert merged["sources"] == full["sources"] and merged["totals"] == full["totals"]
    assert merged["rows"] == full["rows"]
    assert merged["shards"] == {"count": 2, "done": [0, 1]}
    for stage in ("alignment", "instruction"):
        whole_lines = sorted((whole / f"{stage}-00000-of-00001.jsonl").read_text().splitlines())
        shard_lines = sorted(
            line
            for path in Path("sharded").glob(f"{stage}-*-of-00002.jsonl")
            for line in path.read_text().splitlines()
        )
        assert shard_lines == whole_lines


class RecordingTranslator:
    """A translator that prefixes texts, refuses some, and records every batch it is sent."""

    def __init__(
        self,
        refuse: str = "Pneumothorax",
        blank: str = "Bilateral joint effusions.",
        fail_after_batches: int | None = None,
    ):
        self.batches: list[list[str]] = []
        self.refuse = refuse
        self.blank = blank
        self.fail_after_batches = fail_after_batches
        self.closed = False

    def submit_batch(self, texts):
        return answered(self.translate_batch(texts))

    def translate_batch(self, texts):
        if self.fail_after_batches is not None and len(self.batches) >= self.fail_after_batches:
            raise KeyboardInterrupt  # the build is killed mid-way
        self.batches.append(list(texts))
        return [
            Translation(source=text, text=None, reason="translation_not_chinese")
            if text == self.refuse
            else Translation(source=text, text="" if text == self.blank else f"译:{text}")
            for text in texts
        ]

    def close(self):
        self.closed = True


def test_translation_is_batched_and_refusals_are_recorded_as_given(fixture_workspace):
    config = load_build_config(Path("build.yaml"))
    translator = RecordingTranslator()
    manifest = build(config, Path("out"), progress=False, translator=translator)
    assert not translator.closed  # the caller owns a translator it passes in
    sent = [text for batch in translator.batches for text in batch]
    assert all(len(set(batch)) == len(batch) for batch in translator.batches)
    # nothing doomed by the filters or by its images is ever sent for (paid) translation
    for doomed in (
        "Why?",
        "Histology of the resected lesion, H&E stain, 40x magnification.",
        "Five views of the lesion are shown in Figure 6A-E.",
        "What is the imaging modality?",
        "",
    ):
        assert doomed not in sent
    out = Path("out")
    assert outcomes(out)["pmc_vqa-000000000-instruction"] == "translation_not_chinese"
    assert outcomes(out)["pmc_case_report-000000001-instruction"] == "translation_empty"
    assert manifest["sources"]["pmc_vqa"]["instruction"]["dropped"]["translation_not_chinese"] == 1
    kept = {r["id"]: r for r in read_jsonl(out / "instruction-00000-of-00001.jsonl")}
    assert kept["pmc_vqa-000000001-instruction"]["conversations"][1]["value"] == "译:Right"
    totals = manifest["totals"]
    assert totals["read"] == totals["kept"] + sum(totals["dropped"].values()) == len(EXPECTED)


def test_a_killed_build_leaves_no_final_files_and_rerunning_completes_it(fixture_workspace):
    config = load_build_config(Path("build.yaml"))
    with pytest.raises(KeyboardInterrupt):
        build(
            config,
            Path("out"),
            progress=False,
            translator=RecordingTranslator(refuse="", blank="", fail_after_batches=3),
        )
    assert Path("out/alignment-00000-of-00001.jsonl.partial").exists()
    assert not Path("out/alignment-00000-of-00001.jsonl").exists()
    assert not Path("out/manifest.json").exists()
    run_build(out="out")
    fresh = run_build(out="fresh")
    resumed = {name: data for name, data in tree_bytes(Path("out")).items() if not name.endswith(".partial")}
    assert resumed == tree_bytes(fresh)


def test_config_errors_name_the_file_and_the_fix(fixture_workspace, capsys):
    bad = write_config({"filterz": {"min_chars": {}}}, "bad.yaml")
    assert main(["data", "build", "--config", bad, "--out", "x", "--no-progress"]) == 1
    message = capsys.readouterr().err
    assert "bad.yaml" in message and "filterz" in message and "Traceback" not in message
    missing = write_config(
        {"sources": {"pmc_oa": {"records": "nowhere.jsonl", "images": "pmc_oa/images"}}}, "m.yaml"
    )
    assert main(["data", "build", "--config", missing, "--out", "y", "--no-progress"]) == 1
    assert "nowhere.jsonl" in capsys.readouterr().err
    assert not Path("y").exists()  # refused before any work


def test_translator_section_passes_through_to_translator_config():
    data = {
        "sources": {"pmc_oa": {"records": "a.jsonl", "images": "img"}},
        "translator": {
            "backend": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
            "api_key_env": "K",
        },
    }
    config = parse_build_config(data, "inline")
    out = Path("build-out")
    assert config.translator_config(out) == TranslatorConfig(
        backend="openai",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        api_key_env="K",
        cache_path=str(out / "translation_memory.sqlite"),  # the memory lives beside the output by default
    )
    chosen = parse_build_config(
        {**data, "translator": {**data["translator"], "cache_path": "/tm.sqlite"}}, "x"
    )
    assert chosen.translator_config(out).cache_path == "/tm.sqlite"
    with pytest.raises(Exception, match="unknown key"):
        parse_build_config({**data, "translator": {"no_such_setting": 1}}, "inline")


def test_data_package_does_not_import_torch():
    code = (
        "import sys\n"
        "import qilin_med_vl.data.build, qilin_med_vl.data.cli\n"
        "import qilin_med_vl.data.link, qilin_med_vl.data.stats\n"
        "from qilin_med_vl.cli import build_parser\n"
        "build_parser()\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_shipped_config_holds_the_documented_defaults():
    from qilin_med_vl.data.composite import ImageSettings
    from qilin_med_vl.data.filters import TextFilterSettings

    config = load_build_config(Path(__file__).parents[2] / "configs/data/chimed_vl.yaml")
    assert config.filters == TextFilterSettings() and config.images == ImageSettings()
    assert set(config.sources) == {"pmc_oa", "pmc_case_report", "pmc_vqa"}
    assert config.vqa_format == "open" and config.translator_config(Path("o")).backend == "none"
