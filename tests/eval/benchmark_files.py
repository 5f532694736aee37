"""Benchmark files in their exact public layouts, written into a test's tmp_path, with tiny images."""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path

from PIL import Image


def png_bytes(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_image(path: Path, shade: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")
    return path


def slake_record(qid, question, answer, q_lang, answer_type, **overrides) -> dict:
    record = {
        "img_id": 104,
        "img_name": "xmlab104/source.jpg",
        "question": question,
        "answer": answer,
        "q_lang": q_lang,
        "location": "Lung",
        "modality": "CT",
        "answer_type": answer_type,
        "base_type": "vqa",
        "content_type": "Abnormality",
        "triple": ["vhead", "_", "_"],
        "qid": qid,
    }
    record.update(overrides)
    return record


SLAKE_TEST = [
    slake_record(11934, "肺是健康的吗?", "不是", "zh", "CLOSED"),  # a real SLAKE record
    slake_record(11935, "图中包含肝脏吗?", "不包含", "zh", "CLOSED", content_type="Organ"),
    slake_record(11936, "这张图片的扫描平面是什么?", "横断面", "zh", "CLOSED", content_type="Plane"),
    slake_record(11937, "图中最大的器官是什么?", "肝脏", "zh", "OPEN", content_type="Size"),
    slake_record(1, "Is the lung healthy?", "No", "en", "CLOSED"),
    slake_record(2, "Which organ is abnormal?", "Lung", "en", "CLOSED", modality="X-Ray"),
    slake_record(3, "What modality is used?", "MRI", "en", "OPEN", modality="MRI"),
]


def write_slake(root: Path, records: list[dict] = SLAKE_TEST) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.json").write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    write_image(root / "imgs" / "xmlab104" / "source.jpg")
    return root


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


PMC_V1_HEADER = [
    "Figure_path",
    "Question",
    "Answer",
    "Choice A",
    "Choice B",
    "Choice C",
    "Choice D",
    "Answer_label",
]
PMC_V1_ROWS = [
    [
        "PMC1_F1.jpg",
        "Which organism is shown?",
        "E. coli",
        " A:S. aureus",
        " B:E. coli",
        " C:Candida",
        " D:HIV",
        "B",
    ],
    ["PMC1_F1.jpg", "What is the modality?", "CT", " A:MRI", " B:PET", " C:CT", " D:Ultrasound", "C"],
    ["PMC2_F3.jpg", "What is the modality?", "MRI", " A:MRI", " B:PET", " C:CT", " D:Ultrasound", "A"],
]
PMC_V2_HEADER = ["index", "Figure_path", "Caption", "Question", "Choice A", "Choice B", "Choice C", "Choice D", "Answer", "split"]  # fmt: skip
PMC_V2_ROWS = [
    [
        "17",
        "PMC9_F2.jpg",
        "Axial CT of the chest.",
        "What plane is shown?",
        " A:Axial",
        " B:Sagittal",
        " C:Coronal",
        " D:Oblique",
        "A",
        "test",
    ],  # fmt: skip
    [
        "18",
        "PMC9_F2.jpg",
        "Axial CT of the chest.",
        "What modality is this?",
        " A:MRI",
        " B:CT",
        " C:PET",
        " D:X-ray",
        "B",
        "test",
    ],  # fmt: skip
]


def write_pmc_vqa(root: Path, name: str, header: list[str], rows: list[list[str]]) -> Path:
    """A PMC-VQA test CSV with its figures: `figures/` for the v2 layout (it has `index`), else `images/`."""
    write_csv(root / name, header, rows)
    folder = root / ("figures" if "index" in header else "images")
    for row in rows:
        write_image(folder / row[header.index("Figure_path")])
    return root


def write_vqa_rad_json(root: Path, name: str, records: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(records), encoding="utf-8")
    write_image(root / "images" / "synpic100.jpg")
    return root


def vqa_rad_record(qid, question, answer, answer_type, phrase_type) -> dict:
    return {
        "qid": qid,
        "image_name": "synpic100.jpg",
        "image_case_url": "https://medpix.example/case",
        "image_organ": "CHEST",
        "answer": answer,
        "answer_type": answer_type,
        "question_type": "PRES",
        "question": question,
        "question_relation": "NULL",
        "phrase_type": phrase_type,
        "qid_linked_id": f"0{qid}",
    }


VQA_RAD_OFFICIAL = [
    vqa_rad_record(1, "Is there a pneumothorax?", "No", "CLOSED", "freeform"),  # a training question
    vqa_rad_record(2, "Is there a pneumothorax?", "No", "CLOSED", "test_freeform"),
    vqa_rad_record(3, "Where is the mass?", "right upper lobe", "OPEN", "test_para"),
    vqa_rad_record(
        4, "How many ribs are broken?", 2, "OPEN ", "test_freeform"
    ),  # numbers and stray spaces occur
]


def write_qa_parquet(path: Path, rows: list[tuple[bytes, str, str]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "image": [{"bytes": image, "path": None} for image, _, _ in rows],
            "question": [question for _, question, _ in rows],
            "answer": [answer for _, _, answer in rows],
        }
    )
    pq.write_table(table, path)
    return path


QA_PARQUET_ROWS = [
    (png_bytes(1), "is there evidence of an aortic aneurysm?", "yes"),
    (png_bytes(2), "is there evidence of an aortic aneurysm?", "no"),  # same question, other image
    (png_bytes(2), "what is located in the upper lobe?", "a mass"),
]


def write_pathvqa_pickle(root: Path, records: list) -> Path:
    path = root / "qas" / "test" / "test_qa.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(records))
    write_image(root / "images" / "test" / "test_0001.jpg")
    return root


PATHVQA_RECORDS = [
    {"image": "test_0001", "question": "is this tissue necrotic?", "answer": "yes"},
    {"image": "test_0001", "question": "what does this image show?", "answer": "coagulative necrosis"},
]


def omni_record(question_id, options, gt_answer, **extra) -> dict:
    record = {
        "dataset": "ACRIMA",
        "question_id": question_id,
        "question_type": "Disease Diagnosis",
        "question": "What diagnosis is most likely?",
        "gt_answer": gt_answer,
        "image_path": "Images/ACRIMA/Im001.png",
        "modality_type": "Fundus Photography",
    }
    record.update({f"option_{letter}": text for letter, text in zip("ABCD", options, strict=False)})
    record.update(extra)
    return record


def write_omnimedvqa(root: Path, files: dict[str, list[dict]]) -> Path:
    folder = root / "QA_information" / "Open-access"
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in files.items():
        (folder / name).write_text(json.dumps(records), encoding="utf-8")
    write_image(root / "Images" / "ACRIMA" / "Im001.png")
    return root


def chimed_record(record_id, question, answer, stage, image="pmc/PMC1_F1.jpg") -> dict:
    return {
        "id": record_id,
        "image": image,
        "conversations": [
            {"from": "human", "value": f"<image>\n{question}"},
            {"from": "gpt", "value": answer},
        ],
        "meta": {"source": "pmc_vqa" if stage == "instruction" else "pmc_oa", "stage": stage, "ref": "PMC1"},
    }


CHIMED_TEST = [
    chimed_record("q1", "图中是否可见肺部结节？", "是的，右肺上叶可见一个结节。", "instruction"),
    chimed_record("q2", "这是什么检查？", "这是一张胸部CT图像。", "instruction"),
    chimed_record("c1", "请描述这张图像。", "胸部CT显示右肺上叶结节。", "alignment"),
]


def write_chimed_build(root: Path, records: list[dict] = CHIMED_TEST, split: str = "test") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    name = f"{split}-00000-of-00001.jsonl"
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    (root / name).write_text(lines, encoding="utf-8")
    manifest = {"format": "qilin-med-vl/chimed-vl-build/1", "files": {split: [name]}, "images": "images"}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    write_image(root / "images" / "pmc" / "PMC1_F1.jpg")
    return root
