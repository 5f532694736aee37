"""PathVQA test set: `qas/test/test_qa.pkl` (a pickled list of {image, question, answer}; images
`images/test/{image}.jpg`), or a test parquet of image (bytes struct), question, answer.

The pickle is loaded with a builtins-only unpickler. Closed means the answer is yes or no. Item id:
the image name and a hash of the question (pickle), a hash of image bytes and question (parquet).
"""

from __future__ import annotations

from qilin_med_vl.errors import DataError
from qilin_med_vl.eval.items import EvalItem
from qilin_med_vl.eval.safe_pickle import load_pickle
from qilin_med_vl.eval.tasks.base import BenchmarkTask
from qilin_med_vl.eval.tasks.files import content_id, find_file, require_fields, unique_ids
from qilin_med_vl.eval.tasks.parquet_qa import PARQUET_TEST_FILES, parquet_qa_items
from qilin_med_vl.eval.tasks.yes_no import answer_type_of

PICKLE_FILE = "qas/test/test_qa.pkl"
PICKLE_FIELDS = ("image", "question", "answer")
FIX = "use PathVQA's test_qa.pkl or its test parquet as published"


class PathVqaTask(BenchmarkTask):
    name = "pathvqa"

    def _read(self) -> list[EvalItem]:
        path = find_file(
            self.data, [PICKLE_FILE, *PARQUET_TEST_FILES], "PathVQA's qas/ and images/, or a test parquet"
        )
        if path.suffix == ".parquet":
            return parquet_qa_items(path, self.data, self.options, self.name, FIX)
        records = load_pickle(path)
        if not isinstance(records, list):
            raise DataError(
                f"{path}: expected a pickled list of records, found {type(records).__name__}; {FIX}"
            )
        # qas/test/test_qa.pkl -> the dataset root holds images/test/
        root = path.parent.parent.parent if path.parent.name == "test" else path.parent
        for number, record in enumerate(records, start=1):
            require_fields(record, PICKLE_FIELDS, f"{path} record {number}", FIX)
        ids = unique_ids(f"{record['image']}#{content_id(str(record['question']))[:8]}" for record in records)
        return [
            EvalItem(
                id=item_id,
                question=str(record["question"]).strip(),
                reference=str(record["answer"]).strip(),
                image=root / "images" / "test" / f"{record['image']}.jpg",
                language="en",
                answer_type=answer_type_of(str(record["answer"])),
            )
            for item_id, record in zip(ids, records, strict=True)
        ]
