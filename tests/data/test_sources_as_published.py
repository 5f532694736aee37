"""The readers on the sources as really published: figure-id `img_ref`, parquet shards, `Q:`/`A:`, CSV case
reports, PMC-VQA answers kept as text, the `Anwser` header, headers checked before any work, the test split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from qilin_med_vl.cli import main
from qilin_med_vl.data.build_config import load_build_config
from qilin_med_vl.data.sources import read_pmc_case_report, read_pmc_vqa
from qilin_med_vl.llava_format import built_files
from tests.published_sources import ARTICLES, write_published_sources


def _write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_case_report_figure_ids_and_file_names_both_resolve(tmp_path):
    path = _write_csv(
        tmp_path / "case.csv",
        "PMC_id,context,inline,question,answer,img_ref",
        "PMC1999654,ctx,inline text,Q: What is shown?,A: A mass.,\"['pone-0001008-g001', 'PMC1999654_F2.png']\"",
    )
    (row,) = read_pmc_case_report([path])
    assert row.images == ("PMC1999654_pone-0001008-g001.jpg", "PMC1999654_F2.png")
    assert row.texts["question"] == "What is shown?" and row.texts["answer"] == "A mass."
    assert row.error is None


def test_pmc_vqa_answer_is_never_stripped_and_the_early_header_spelling_reads(tmp_path):
    path = _write_csv(
        tmp_path / "test.csv",
        "Figure_path,Question,Anwser,Choice A,Choice B,Choice C,Choice D,Answer_label",
        "PMC1_F1.jpg,Which organism?,E. coli, A:S. aureus, B:E. coli, C:H. pylori, D:None,B",
        "PMC2_F1.jpg,Which one?,H. pylori, A:S. aureus, B:E. coli, C:H. pylori, D:None,",
    )
    first, second = read_pmc_vqa([path])
    assert first.texts["answer"] == "E. coli" and first.answer_label == "B"
    assert first.texts["choice_B"] == "E. coli"
    assert second.texts["answer"] == "H. pylori" and second.answer_label == "C"  # label found by choice text


def test_sharded_parquet_is_read_whole_through_a_glob(tmp_path):
    config_path = write_published_sources(tmp_path, test_fraction=0.0)
    assert main(["data", "build", "--config", str(config_path), "--no-progress"]) == 0
    manifest = json.loads((tmp_path / "built/manifest.json").read_text())
    assert manifest["rows"]["pmc_case_report"] == ARTICLES  # both shards
    case_report = manifest["sources"]["pmc_case_report"]["instruction"]
    assert case_report["kept"] == ARTICLES, case_report
    records = [json.loads(line) for line in (tmp_path / "built/instruction-00000-of-00001.jsonl").open()]
    answers = {r["conversations"][1]["value"] for r in records if r["meta"]["source"] == "pmc_case_report"}
    assert answers == {"A mass in the right lung."}  # "A:" stripped
    vqa_answers = {r["conversations"][1]["value"] for r in records if r["meta"]["source"] == "pmc_vqa"}
    assert vqa_answers == {"E. coli"}


def test_a_bad_header_stops_the_build_before_anything_is_written(tmp_path, capsys):
    config_path = write_published_sources(tmp_path)
    _write_csv(tmp_path / "pmc_vqa/train.csv", "image,question,answer", "a.jpg,q,a")
    assert main(["data", "build", "--config", str(config_path), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "train.csv: not a PMC-VQA CSV file, missing column(s) Figure_path" in error
    assert not (tmp_path / "built").exists()  # no folder, no .partial files, nothing paid for


def test_a_case_report_file_of_another_kind_is_refused_by_name(tmp_path, capsys):
    config_path = write_published_sources(tmp_path)
    config = yaml.safe_load(config_path.read_text())
    (tmp_path / "reports.txt").write_text("PMC_id\tcontext\n", encoding="utf-8")
    config["sources"]["pmc_case_report"]["records"] = str(tmp_path / "reports.txt")
    config_path.write_text(yaml.safe_dump(config))
    assert main(["data", "build", "--config", str(config_path), "--no-progress"]) == 1
    assert "reports.txt: PMC-CaseReport is read from .parquet, .csv, .jsonl files" in capsys.readouterr().err


def test_a_glob_that_matches_nothing_names_the_pattern(tmp_path):
    config_path = write_published_sources(tmp_path)
    config = yaml.safe_load(config_path.read_text())
    config["sources"]["pmc_case_report"]["records"] = str(tmp_path / "nowhere/*.parquet")
    config_path.write_text(yaml.safe_dump(config))
    from qilin_med_vl.data.build import check_sources

    with pytest.raises(Exception, match=r"nowhere/\*\.parquet matches no file"):
        check_sources(load_build_config(config_path))


def test_the_test_split_holds_whole_articles_and_is_counted_as_kept(tmp_path):
    config_path = write_published_sources(tmp_path, test_fraction=0.3)
    assert main(["data", "build", "--config", str(config_path), "--no-progress"]) == 0
    folder = tmp_path / "built"
    manifest = json.loads((folder / "manifest.json").read_text())

    def articles(split: str) -> set[str]:
        found = set()
        for path in built_files(folder, split).files:
            for line in path.open(encoding="utf-8"):
                found.add(json.loads(line)["meta"]["ref"][:10])  # PMC + 7 digits
        return found

    held_out = articles("test")
    trained = articles("alignment") | articles("instruction")
    assert held_out and trained and not held_out & trained
    test_lines = sum(1 for path in built_files(folder, "test").files for _ in path.open())
    assert manifest["totals"]["test"] == test_lines
    for stages in manifest["sources"].values():
        for entry in stages.values():
            assert entry["kept"] + sum(entry["dropped"].values()) == entry["read"]


def test_build_takes_key_value_overrides_like_train(tmp_path, capsys):
    config_path = write_published_sources(tmp_path)
    code = main(["data", "build", "--config", str(config_path), "--no-progress", "seed=11",
                 "split.test=0.5", "translator.model=my-model"])  # fmt: skip
    assert code == 0
    recorded = json.loads((tmp_path / "built/manifest.json").read_text())["config"]
    assert (recorded["seed"], recorded["split"]["test"], recorded["translator"]["model"]) == (
        11,
        0.5,
        "my-model",
    )
    assert main(["data", "build", "--config", str(config_path), "translator.colour=red"]) == 1
    assert "unknown key(s) colour in 'translator'" in capsys.readouterr().err


def test_the_memory_backend_serves_imported_pairs_and_drops_what_it_lacks(tmp_path):
    config_path = write_published_sources(tmp_path, test_fraction=0.0)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"source": "Which organism is seen in the culture?", "target": "培养物中见到的是哪种微生物？"},
                   ensure_ascii=False) + "\n"
        + json.dumps({"source": "E. coli", "target": "大肠杆菌"}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    built = tmp_path / "built"
    assert main(["data", "tm", "import", str(pairs), "--out", str(built)]) == 0
    assert (
        main(["data", "build", "--config", str(config_path), "--no-progress", "--translator", "memory"]) == 0
    )
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["sources"]["pmc_vqa"]["instruction"]["kept"] == ARTICLES
    assert manifest["sources"]["pmc_oa"]["alignment"]["dropped"] == {"translation_not_in_memory": ARTICLES}
    records = [json.loads(line) for line in (built / "instruction-00000-of-00001.jsonl").open()]
    assert {r["conversations"][1]["value"] for r in records} == {"大肠杆菌"}
