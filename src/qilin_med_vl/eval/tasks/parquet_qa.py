"""Items of a parquet test set of `image` (a struct holding the image bytes), `question`, `answer`.

The shape the VQA-RAD and PathVQA parquet copies share. The images are written to files once, in the
image cache, since items point at image files; closed means the answer is yes or no. Item id: a hash
of the image bytes and the question.
"""

from __future__ import annotations

from pathlib import Path

from qilin_med_vl.errors import DataError
from qilin_med_vl.eval.items import EvalItem, TaskOptions
from qilin_med_vl.eval.tasks.files import (
    content_id,
    image_bytes,
    image_cache_folder,
    read_parquet,
    unique_ids,
    write_embedded_image,
)
from qilin_med_vl.eval.tasks.yes_no import answer_type_of

PARQUET_COLUMNS = ("image", "question", "answer")
PARQUET_TEST_FILES = ["test*.parquet", "data/test-*.parquet", "data/test*.parquet"]  # as the copies name them


def parquet_qa_items(
    path: Path, data: Path, options: TaskOptions, task_name: str, fix: str
) -> list[EvalItem]:
    rows = read_parquet(path, PARQUET_COLUMNS, fix)
    folder = image_cache_folder(data, options.image_cache, task_name, path)
    images = [image_bytes(row["image"], f"{path} row {number}") for number, row in enumerate(rows, start=1)]
    ids = unique_ids(content_id(image, str(row["question"])) for image, row in zip(images, rows, strict=True))
    items = []
    for number, (item_id, image, row) in enumerate(zip(ids, images, rows, strict=True), start=1):
        answer = "" if row["answer"] is None else str(row["answer"]).strip()
        if not answer:
            raise DataError(f"{path} row {number}: the answer is empty; {fix}")
        items.append(
            EvalItem(
                id=item_id,
                question=str(row["question"]).strip(),
                reference=answer,
                image=write_embedded_image(image, folder, item_id),
                language="en",
                answer_type=answer_type_of(answer),
                extra={"row": number},
            )
        )
    return items
