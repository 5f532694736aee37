"""A small workspace of source files exactly as the public datasets publish them, for seam tests.

PMC-OA as JSONL; PMC-CaseReport as two parquet shards under data/ whose `img_ref` holds figure ids
(the image of id X of article P is P_X.jpg) and whose QA fields carry `Q:` / `A:`; PMC-VQA v1 as CSV
with the early `Anwser` header spelling and an answer ("E. coli") that looks like a choice prefix.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PIL import Image

ARTICLES = 12
BUILD_CONFIG = "build.yaml"


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = (seed * 53) % 200 + 30
    Image.new("RGB", (96, 80), (tone, 255 - tone, (tone * 3) % 256)).save(path)


def write_published_sources(root: Path, test_fraction: float = 0.3) -> Path:
    """Write the workspace under `root`; returns the build config's path (paths in it are absolute)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    oa_rows, case_rows, vqa_rows = [], [], []
    for article in range(ARTICLES):
        pmc = f"PMC{1999600 + article}"
        oa_name = f"{pmc}_F1.jpg"
        _image(root / "pmc_oa/images" / oa_name, article)
        oa_rows.append({"image": oa_name, "caption": f"Chest radiograph number {article} shows a nodule.",
                        "pmcid": pmc, "url_name": f"{pmc}.tar.gz"})  # fmt: skip
        figure_ids = [f"pone-{article:07d}-g001", f"pone-{article:07d}-g002"][: 1 + article % 2]
        for index, figure in enumerate(figure_ids):
            _image(root / "pmc_case_report/figures" / f"{pmc}_{figure}.jpg", article + index)
        case_rows.append(
            {
                "PMC_id": pmc,
                "context": f"A patient of case {article} presented with cough for two weeks.",
                "inline": f"Computed tomography showed a mass in case {article} (Figure 1).",
                "question": f"Q: What did the computed tomography of case {article} show?",
                "answer": "A: A mass in the right lung.",
                "img_ref": str(figure_ids),
            }
        )
        figure = f"{pmc}_Fig2.png"
        _image(root / "pmc_vqa/figures" / figure, article + 7)
        vqa_rows.append(
            [
                figure,
                "Which organism is seen in the culture?",
                "E. coli",
                " A:E. coli",
                " B:S. aureus",
                " C:H. pylori",
                " D:None",
                "A",
            ]  # fmt: skip
        )
    (root / "pmc_oa").mkdir(parents=True, exist_ok=True)
    (root / "pmc_oa/pmc_oa.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in oa_rows), encoding="utf-8"
    )
    (root / "pmc_case_report/data").mkdir(parents=True, exist_ok=True)
    half = len(case_rows) // 2
    for shard, rows in enumerate((case_rows[:half], case_rows[half:])):
        table = pa.Table.from_pylist(rows)
        pq.write_table(table, root / f"pmc_case_report/data/train-0000{shard}-of-00002-5d8a.parquet")
    header = "Figure_path,Question,Anwser,Choice A,Choice B,Choice C,Choice D,Answer_label\n"
    lines = [",".join(f'"{value}"' for value in row) for row in vqa_rows]
    (root / "pmc_vqa/train.csv").write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "out": str(root / "built"),
        "seed": 3,
        "sources": {
            "pmc_oa": {"records": str(root / "pmc_oa/pmc_oa.jsonl"), "images": str(root / "pmc_oa/images")},
            "pmc_case_report": {
                "records": str(root / "pmc_case_report/data/train-*.parquet"),
                "images": str(root / "pmc_case_report/figures"),
            },
            "pmc_vqa": {
                "records": [str(root / "pmc_vqa/train.csv")],
                "images": str(root / "pmc_vqa/figures"),
            },
        },
        "split": {"test": test_fraction},
        "translator": {"backend": "none"},
    }
    path = root / BUILD_CONFIG
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
