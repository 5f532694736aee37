"""The seams, crossed through the CLI as the docs tell a user: sources in the public formats -> `qilin data
build` -> stage 1 -> stage 2 -> a `qilin chat` answer, on the tiny preset; and training reads exactly a
build's stage records (every shard, never the drop logs or the held-out split) with the build's images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qilin_med_vl.cli import main
from qilin_med_vl.llava_format import built_files
from tests.published_sources import write_published_sources

REPO = Path(__file__).resolve().parents[1]
TINY_ALIGN = REPO / "configs/train/tiny_align.yaml"
TINY_INSTRUCT = REPO / "configs/train/tiny_instruct.yaml"
QUICK = ["max_steps=2", "save_steps=100", "per_device_train_batch_size=4", "max_length=160", "report_to=[]",
         "progress_bar=false", "device=cpu", "logging_steps=1"]  # fmt: skip


def _lines(files: list[Path]) -> int:
    return sum(1 for path in files for line in path.open(encoding="utf-8") if line.strip())


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "tiny"
    assert main(["model", "create", "--preset", "tiny", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_sources_to_build_to_both_stages_to_a_chat_answer(tmp_path, tiny_base, capsys):
    config = write_published_sources(tmp_path / "sources")
    built = tmp_path / "sources/built"
    assert main(["data", "build", "--config", str(config), "--no-progress"]) == 0

    stage1, stage2 = tmp_path / "align", tmp_path / "instruct"
    common = [f"data={built}", *QUICK]
    assert (
        main(["train", "--config", str(TINY_ALIGN), f"model={tiny_base}", f"output_dir={stage1}", *common])
        == 0
    )
    assert (
        main(["train", "--config", str(TINY_INSTRUCT), f"model={stage1}", f"output_dir={stage2}", *common])
        == 0
    )
    for stage, directory in (("alignment", stage1), ("instruction", stage2)):
        summary = json.loads((directory / "data_summary.json").read_text())
        assert summary["records"] == _lines(built_files(built, stage).files)
        assert summary["dropped_by_reason"] == {}  # every image found under the build's image root

    image = built / "images" / json.loads(built_files(built, "test").files[0].open().readline())["image"]
    capsys.readouterr()
    assert (
        main(
            [
                "chat",
                "--model",
                str(stage2),
                "--image",
                str(image),
                "--max-new-tokens",
                "4",
                "图中显示了什么？",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip()


def test_training_reads_every_shard_of_a_sharded_build(tmp_path, tiny_base):
    config = write_published_sources(tmp_path / "sources", test_fraction=0.0)
    built = tmp_path / "sources/built"
    for shard in ("0/2", "1/2"):
        assert main(["data", "build", "--config", str(config), "--shard", shard, "--no-progress"]) == 0
    files = built_files(built, "alignment").files
    assert [path.name for path in files] == [
        "alignment-00000-of-00002.jsonl",
        "alignment-00001-of-00002.jsonl",
    ]
    (built / "dropped-00000-of-00002.jsonl").write_text('{"not": "a record"}\n')  # must never be read
    out = tmp_path / "align"
    assert main(["train", "--config", str(TINY_ALIGN), f"model={tiny_base}", f"data={built}",
                 f"output_dir={out}", *QUICK, "max_steps=1"]) == 0  # fmt: skip
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["records"] == _lines(files) == 24  # 12 PMC-OA captions + 12 case reports


def test_an_unfinished_sharded_build_is_refused_by_name(tmp_path, tiny_base, capsys):
    config = write_published_sources(tmp_path / "sources", test_fraction=0.0)
    built = tmp_path / "sources/built"
    assert main(["data", "build", "--config", str(config), "--shard", "1/2", "--no-progress"]) == 0
    code = main(["train", "--config", str(TINY_ALIGN), f"model={tiny_base}", f"data={built}",
                 f"output_dir={tmp_path / 'x'}", *QUICK])  # fmt: skip
    assert code == 1
    assert "shards [0] of 2 are not built yet" in capsys.readouterr().err
