"""A small task for harness tests: items from DIR/items.jsonl, exact-match scoring, prompt "Q? Answer briefly."

`make_task` has the TaskFactory signature, so tests run it through `qilin eval --task-factory
tests.eval.toy_task:make_task`. `write_toy_benchmark` writes a folder of such items with PNG images.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from qilin_med_vl.eval.items import CLOSED, OPEN, EvalItem, ItemScore, TaskOptions

PROMPT_SUFFIX = " Answer briefly."

# (id, question, reference, language, answer type, modality)
TOY_ITEMS = [
    ("q0", "Is there a fracture?", "yes", "en", CLOSED, "X-Ray"),
    ("q1", "Which organ is shown?", "lung", "en", OPEN, "CT"),
    ("q2", "是否有积液?", "是", "zh", CLOSED, "CT"),
    ("q3", "显示的是哪个器官?", "肝脏", "zh", OPEN, "MRI"),
    ("q4", "Is the heart enlarged?", "no", "en", CLOSED, "X-Ray"),
    ("q5", "What is abnormal?", "nodule", "en", OPEN, "CT"),
    ("q6", "病灶在哪一侧?", "左侧", "zh", OPEN, "CT"),
    ("q7", "Is this an MRI?", "yes", "en", CLOSED, "MRI"),
]


def prompt_of(question: str) -> str:
    return question + PROMPT_SUFFIX


def write_toy_benchmark(folder: Path, items=TOY_ITEMS) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    with (folder / "items.jsonl").open("w", encoding="utf-8") as handle:
        for number, (item_id, question, reference, language, answer_type, modality) in enumerate(items):
            Image.new("RGB", (24, 20), (10 * number, 40, 90)).save(folder / "images" / f"{item_id}.png")
            row = {
                "id": item_id,
                "question": question,
                "reference": reference,
                "language": language,
                "answer_type": answer_type,
                "modality": modality,
                "image": f"images/{item_id}.png",
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return folder


class ToyTask:
    name = "toy"

    def __init__(self, data_dir: Path, options: TaskOptions):
        self.data_dir = Path(data_dir)
        self.options = options

    def items(self):
        for line in (self.data_dir / "items.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if self.options.lang not in ("all", row["language"]):
                continue
            yield EvalItem(
                id=row["id"],
                question=row["question"],
                reference=row["reference"],
                image=self.data_dir / row["image"],
                language=row["language"],
                answer_type=row["answer_type"],
                modality=row["modality"],
                extra={"source": "toy"},
            )

    def prompt(self, item: EvalItem) -> str:
        return prompt_of(item.question)

    def score(self, item: EvalItem, prediction: str) -> ItemScore:
        exact = prediction.strip().lower() == item.reference.lower()
        return ItemScore(1.0 if exact else 0.0, {"exact": exact, "characters": len(prediction)})


def make_task(data_dir: Path, options: TaskOptions) -> ToyTask:
    return ToyTask(data_dir, options)
