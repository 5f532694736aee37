"""`qilin data tm import|export` and the translation memory under it: pairs round-trip through TSV and
JSONL (tabs, newlines, quotes included), land under the key the flags name, and bad files are named."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest

from qilin_med_vl.data.translation import cli as tm_cli
from qilin_med_vl.data.translation import pairs as pairs_format
from qilin_med_vl.data.translation.memory import TranslationMemory
from qilin_med_vl.errors import DataError

PAIRS = [
    ("Chest X-ray shows bilateral infiltrates.", "胸片显示双侧浸润影。"),
    ('The "ground-glass" opacity\tin the left lung', "左肺“磨玻璃”样\t密度影"),
    ("Line one of a caption.\nLine two, with 5 mm.", "图注第一行。\n第二行，5 mm。"),
    ('"Quoted at the start"', "“开头带引号”"),
]


def run_tm(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="qilin data tm")
    tm_cli.register(parser)
    args = parser.parse_args(list(argv))
    return args.handler(args)


def write_tsv(path: Path, pairs) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, dialect="excel-tab").writerows(pairs)


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl"])
def test_import_then_export_round_trips_every_pair(tmp_path: Path, suffix: str, capsys):
    cache = tmp_path / "tm.sqlite"
    source_file = tmp_path / f"pairs{suffix}"
    pairs_format.write_pairs(source_file, suffix[1:], PAIRS)

    assert (
        run_tm("import", str(source_file), "--cache", str(cache), "--model", "m1", "--prompt-version", "v9")
        == 0
    )
    assert "4 added" in capsys.readouterr().out
    exported = tmp_path / f"out{suffix}"
    assert (
        run_tm("export", str(exported), "--cache", str(cache), "--model", "m1", "--prompt-version", "v9") == 0
    )

    assert list(pairs_format.read_pairs(exported, suffix[1:])) == sorted(PAIRS)
    # the exported file is readable by the ordinary tools of its format
    if suffix == ".tsv":
        with exported.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, dialect="excel-tab"))
        assert rows == [["source", "target"], *map(list, sorted(PAIRS))]
    else:
        lines = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
        assert lines == [{"source": s, "target": t} for s, t in sorted(PAIRS)]


def test_pairs_go_under_the_key_the_flags_name(tmp_path: Path):
    cache = tmp_path / "tm.sqlite"
    pairs = tmp_path / "pairs.tsv"
    write_tsv(pairs, PAIRS[:1])
    run_tm("import", str(pairs), "--cache", str(cache), "--model", "qwen", "--prompt-version", "zh-v1")
    with TranslationMemory(cache) as memory:
        assert memory.translation("qwen", "zh-v1", PAIRS[0][0]) == PAIRS[0][1]
        assert memory.translation("gpt-3.5-turbo", "zh-v1", PAIRS[0][0]) is None
        assert memory.keys() == [("qwen", "zh-v1", 1)]


def test_defaults_are_the_builds_defaults(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pairs = tmp_path / "pairs.jsonl"
    pairs_format.write_pairs(pairs, "jsonl", PAIRS[:2])
    run_tm("import", str(pairs))
    from qilin_med_vl.data.translation.config import DEFAULT_MODEL
    from qilin_med_vl.data.translation.prompt import PROMPT_VERSION

    with TranslationMemory(tmp_path / "runs/chimed_vl/translation_memory.sqlite") as memory:
        assert memory.keys() == [(DEFAULT_MODEL, PROMPT_VERSION, 2)]


def test_reimport_replaces_unless_asked_to_keep(tmp_path: Path, capsys):
    cache = tmp_path / "tm.sqlite"
    first, second = tmp_path / "a.tsv", tmp_path / "b.tsv"
    write_tsv(first, [("pneumonia", "肺炎"), ("edema", "水肿")])
    write_tsv(second, [("pneumonia", "肺部炎症"), ("edema", "水肿")])
    run_tm("import", str(first), "--cache", str(cache))
    run_tm("import", str(second), "--cache", str(cache), "--keep-existing")
    assert "0 added, 0 replaced, 2 kept" in capsys.readouterr().out
    with TranslationMemory(cache) as memory:
        assert memory.translation("gpt-3.5-turbo", "zh-v1", "pneumonia") == "肺炎"
    run_tm("import", str(second), "--cache", str(cache))
    assert "0 added, 1 replaced, 1 kept" in capsys.readouterr().out
    with TranslationMemory(cache) as memory:
        assert memory.translation("gpt-3.5-turbo", "zh-v1", "pneumonia") == "肺部炎症"


def test_an_import_with_a_bad_line_stores_nothing_and_names_the_line(tmp_path: Path):
    cache = tmp_path / "tm.sqlite"
    bad = tmp_path / "bad.tsv"
    bad.write_text("source\ttarget\npneumonia\t肺炎\nonly one field\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.tsv, line 3"):
        run_tm("import", str(bad), "--cache", str(cache))
    with TranslationMemory(cache) as memory:
        assert memory.keys() == []

    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"source": "a", "target": "甲"}\n{"en": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2"):
        run_tm("import", str(bad_json), "--cache", str(cache))
    with pytest.raises(DataError, match="--format"):
        run_tm("import", str(tmp_path / "pairs.txt"), "--cache", str(cache))


def test_export_warns_when_the_key_holds_nothing(tmp_path: Path, capsys):
    cache = tmp_path / "tm.sqlite"
    pairs = tmp_path / "pairs.tsv"
    write_tsv(pairs, PAIRS[:1])
    run_tm("import", str(pairs), "--cache", str(cache), "--model", "qwen")
    run_tm("export", str(tmp_path / "out.tsv"), "--cache", str(cache), "--model", "other")
    assert "model=qwen prompt_version=zh-v1 (1 pairs)" in capsys.readouterr().err
    with pytest.raises(DataError, match="does not exist"):
        run_tm("export", str(tmp_path / "out.tsv"), "--cache", str(tmp_path / "missing.sqlite"))


def test_a_file_that_is_not_a_memory_is_named(tmp_path: Path):
    not_sqlite = tmp_path / "notes.sqlite"
    not_sqlite.write_text("these are notes, not a database\n" * 20, encoding="utf-8")
    with pytest.raises(DataError, match="notes.sqlite is not a SQLite database"):
        TranslationMemory(not_sqlite)


def test_no_action_prints_help(capsys):
    assert run_tm() == 2
    assert "import" in capsys.readouterr().out


def test_import_and_export_default_to_the_memory_the_build_writes(tmp_path, monkeypatch):
    from qilin_med_vl.data.build_config import parse_build_config

    pairs = tmp_path / "pairs.jsonl"
    pairs_format.write_pairs(pairs, "jsonl", PAIRS[:2])
    build_out = tmp_path / "built"
    assert run_tm("import", str(pairs), "--out", str(build_out)) == 0
    config = parse_build_config({"sources": {"pmc_oa": {"records": "x", "images": "y"}}}, "test")
    assert Path(config.translator_config(build_out).cache_path) == build_out / "translation_memory.sqlite"
    assert (build_out / "translation_memory.sqlite").is_file()  # exactly where the build looks
    exported = tmp_path / "back.jsonl"
    assert run_tm("export", str(exported), "--out", str(build_out)) == 0
    assert sorted(pairs_format.read_pairs(exported, "jsonl")) == sorted(PAIRS[:2])
    monkeypatch.chdir(tmp_path)  # no --out, no --cache: the shipped config's output folder
    with pytest.raises(DataError, match="runs/chimed_vl/translation_memory.sqlite does not exist"):
        run_tm("export", str(exported))
