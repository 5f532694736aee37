"""VQA-RAD test questions, from any of its three published shapes (the first found is read):

1. the official `VQA_RAD Dataset Public.json` (fields image_name, question, answer, answer_type
   OPEN/CLOSED, question_type, phrase_type, qid ...): test questions are those whose phrase_type starts
   with "test" (test_freeform, test_para);
2. the `testset.json` of the trainset.json/testset.json split (same fields; every record is a test one);
3. a test parquet (`test*.parquet`, `data/test-*.parquet`) of image (a struct holding the bytes),
   question, answer: closed when the answer is yes/no; images are written to the image cache.
Images of the JSON shapes are in `images/` (or `VQA_RAD Image Folder/`). Item id: qid (JSON shapes),
a hash of image bytes and question (parquet).
"""

from __future__ import annotations

from pathlib import Path

from qilin_med_vl.eval.items import CLOSED, OPEN, EvalItem
from qilin_med_vl.eval.tasks.base import BenchmarkTask
from qilin_med_vl.eval.tasks.files import find_file, read_json_list, require_fields, unique_ids
from qilin_med_vl.eval.tasks.parquet_qa import PARQUET_TEST_FILES, parquet_qa_items
from qilin_med_vl.eval.tasks.yes_no import answer_type_of

OFFICIAL_FILE = "VQA_RAD Dataset Public.json"
SPLIT_TEST_FILE = "testset.json"
IMAGE_FOLDERS = ("images", "VQA_RAD Image Folder")
JSON_FIELDS = ("qid", "image_name", "question", "answer", "answer_type")
ANSWER_TYPES = {"OPEN": OPEN, "CLOSED": CLOSED}
FIX = "use VQA-RAD's files as published"


class VqaRadTask(BenchmarkTask):
    name = "vqa-rad"

    def _read(self) -> list[EvalItem]:
        path = find_file(
            self.data,
            [OFFICIAL_FILE, SPLIT_TEST_FILE, *PARQUET_TEST_FILES],
            "VQA-RAD's JSON and images, or a test parquet",
        )
        if path.suffix == ".parquet":
            return parquet_qa_items(path, self.data, self.options, self.name, FIX)
        return self._read_json(path, official=path.name == OFFICIAL_FILE)

    def _read_json(self, path: Path, official: bool) -> list[EvalItem]:
        image_root = next(
            (path.parent / name for name in IMAGE_FOLDERS if (path.parent / name).is_dir()),
            path.parent / "images",
        )
        fields = (*JSON_FIELDS, "phrase_type") if official else JSON_FIELDS
        kept = []
        for number, record in enumerate(read_json_list(path), start=1):
            require_fields(record, fields, f"{path} record {number}", FIX)
            if official and not str(record["phrase_type"]).strip().startswith("test"):
                continue
            answer = str(record["answer"]).strip()
            # a few releases carry "CLOSED " or lower case; anything else falls back to the yes/no rule
            answer_type = ANSWER_TYPES.get(str(record["answer_type"]).strip().upper()) or answer_type_of(
                answer
            )
            kept.append((record, answer, answer_type))
        ids = unique_ids(str(record["qid"]) for record, _, _ in kept)
        return [
            EvalItem(
                id=item_id,
                question=str(record["question"]).strip(),
                reference=answer,
                image=image_root / str(record["image_name"]).strip(),
                language="en",
                answer_type=answer_type,
                content_type=str(record.get("question_type", "")),
                extra={
                    "phrase_type": record.get("phrase_type"),
                    "qid_linked_id": record.get("qid_linked_id"),
                },
            )
            for item_id, (record, answer, answer_type) in zip(ids, kept, strict=True)
        ]
