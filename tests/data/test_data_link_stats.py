"""`qilin data link-images` on the released formats and `qilin data stats` against a reference count."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from qilin_med_vl.cli import main

RELEASED = [
    "released/ChiMed-VL-Alignment.jsonl",
    "released/ChiMed-VL-Instruction.json",
    "released/ChiMed-VL-Chat.json",
]
WORD_OR_PUNCTUATION = re.compile(r"\w+|[^\w\s]+")  # what the `Whitespace` pre-tokenizer splits into


def test_link_images_attaches_found_images_and_reports_the_rest(fixture_workspace):
    assert (
        main(
            [
                "data",
                "link-images",
                *RELEASED,
                "--images",
                "pmc_oa/images",
                "--images",
                "pmc_vqa/figures",
                "--out",
                "linked",
            ]
        )
        == 0
    )
    report = json.loads(Path("linked/link_report.json").read_text())
    assert report["files"]["ChiMed-VL-Alignment.jsonl"] == {
        "records": 3,
        "linked": 2,
        "missing": 1,
        "malformed": 0,
    }
    assert report["files"]["ChiMed-VL-Instruction.json"] == {
        "records": 3,
        "linked": 2,
        "missing": 1,
        "malformed": 0,
    }
    assert report["files"]["ChiMed-VL-Chat.json"] == {"records": 2, "linked": 2, "missing": 0, "malformed": 0}
    assert report["missing_images"] == 2
    missing = [json.loads(line) for line in Path("linked/missing.jsonl").read_text().splitlines()]
    assert {(entry["id"], tuple(entry["missing"])) for entry in missing} == {
        ("PMC999_F1", ("PMC999_F1.jpg",)),
        ("PMC998_F1_0", ("PMC998_F1.jpg",)),
    }
    chat = [json.loads(line) for line in Path("linked/ChiMed-VL-Chat.jsonl").read_text().splitlines()]
    original = json.loads(Path(RELEASED[2]).read_text("utf-8"))
    assert [record["conversations"] for record in chat] == [record["conversations"] for record in original]
    for name in ("ChiMed-VL-Alignment", "ChiMed-VL-Instruction", "ChiMed-VL-Chat"):
        for line in Path(f"linked/{name}.jsonl").read_text().splitlines():
            record = json.loads(line)
            with Image.open(Path("linked/images") / record["image"]) as image:
                image.load()
    assert (
        Path("linked/images/PMC301_F2.png").read_bytes() == Path("pmc_vqa/figures/PMC301_F2.png").read_bytes()
    )
    assert (
        main(
            [
                "data",
                "link-images",
                RELEASED[0],
                "--images",
                "pmc_oa/images",
                "--out",
                "symlinked",
                "--mode",
                "symlink",
            ]
        )
        == 0
    )
    assert Path("symlinked/images/PMC100_F1.jpg").is_symlink()


def tiny_tokenizer(folder: Path) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "the": 1, "CT": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def reference_summary(lengths: list[int]) -> dict:
    q1, median, q3 = np.percentile(lengths, [25, 50, 75])
    return {
        "count": len(lengths),
        "total": sum(lengths),
        "max": max(lengths),
        "median": median,
        "q1": q1,
        "q3": q3,
    }


def test_stats_match_a_reference_count(fixture_workspace, capsys):
    assert main(["data", "build", "--config", "build.yaml", "--out", "out", "--no-progress"]) == 0
    tokenizer = tiny_tokenizer(Path("tok"))
    assert main(["data", "stats", "out", "--tokenizer", str(tokenizer)]) == 0
    printed = capsys.readouterr().out
    assert "pairs #" in printed and "median (Q1, Q3) context" in printed
    stats = json.loads(Path("out/stats.json").read_text())
    # reference: the source texts of the kept records, split into words and punctuation
    expected: dict = {}
    for stage in ("alignment", "instruction"):
        for line in Path(f"out/{stage}-00000-of-00001.jsonl").read_text().splitlines():
            record = json.loads(line)
            source = record["meta"]["source"]
            for name, (turn, start, end) in record["meta"]["spans"].items():
                column = {"caption": "inline"}.get(name, name)
                text = record["conversations"][turn]["value"][start:end]
                for key in (source, "total"):
                    expected.setdefault(stage, {}).setdefault(key, {}).setdefault(column, []).append(
                        len(WORD_OR_PUNCTUATION.findall(text))
                    )
    assert stats["unit"] == "tokens"
    assert stats["tables"]["alignment"]["pmc_oa"]["pairs"] == 2
    assert stats["tables"]["alignment"]["pmc_case_report"]["pairs"] == 6
    assert stats["tables"]["instruction"]["total"]["pairs"] == 13
    for stage, table in expected.items():
        for source, columns in table.items():
            for column, lengths in columns.items():
                got = stats["tables"][stage][source][column]
                want = reference_summary(lengths)
                assert got == {
                    key: (float(value) if key in ("median", "q1", "q3") else value)
                    for key, value in want.items()
                }, (stage, source, column)
    assert stats["tables"]["alignment"]["pmc_oa"]["context"]["count"] == 0  # PMC-OA has no contexts
    with Image.open("out/length_histogram.png") as image:
        assert image.format == "PNG" and image.size[0] > 400


def test_stats_without_tokenizer_count_jieba_words_on_released_files(fixture_workspace):
    import jieba

    assert main(["data", "stats", "released", "--out", "released_stats"]) == 0
    stats = json.loads(Path("released_stats/stats.json").read_text())
    assert stats["unit"] == "jieba words"
    assert stats["tables"]["alignment"]["released"]["pairs"] == 3
    assert stats["tables"]["instruction"]["released"]["pairs"] == 5  # 3 instruction + 2 multi-turn chats
    answers = []
    for record in json.loads(Path(RELEASED[1]).read_text("utf-8")) + json.loads(
        Path(RELEASED[2]).read_text("utf-8")
    ):
        answers += [turn["value"] for turn in record["conversations"] if turn["from"] == "gpt"]
    lengths = [sum(1 for word in jieba.cut(text) if word.strip()) for text in answers]
    assert stats["tables"]["instruction"]["released"]["answer"]["total"] == sum(lengths)
    assert stats["tables"]["instruction"]["released"]["answer"]["count"] == len(answers) == 8
