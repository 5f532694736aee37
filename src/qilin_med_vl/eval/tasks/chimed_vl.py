"""ChiMed-VL held-out test split of a `qilin data build` folder, read through its manifest.

Each LLaVA record's first human turn (without `<image>`) is the question and the first gpt turn the
reference. Instruction records become QA items, closed when the reference opens with a yes/no word,
else open; alignment records become caption items. Language zh. meta.source and meta.ref go into
extra. Item id: the record's id.
"""

from __future__ import annotations

from qilin_med_vl.data.sources import iter_jsonl
from qilin_med_vl.errors import DataError
from qilin_med_vl.eval.items import CAPTION, CLOSED, OPEN, EvalItem
from qilin_med_vl.eval.polarity import reference_polarity
from qilin_med_vl.eval.tasks.base import BenchmarkTask
from qilin_med_vl.eval.tasks.files import unique_ids
from qilin_med_vl.llava_format import (
    ALIGNMENT,
    INSTRUCTION,
    TEST,
    built_files,
    record_turns,
    strip_image_token,
)

FIX = "rebuild the folder with `qilin data build`"


class ChimedVlTask(BenchmarkTask):
    name = "chimed-vl"

    def _read(self) -> list[EvalItem]:
        built = built_files(self.data, TEST)
        rows = []
        for path in built.files:
            for where, record, error in iter_jsonl(path):
                if error is not None:
                    raise DataError(f"{where}: {error}; {FIX}")
                turns = record_turns(record, where)
                meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
                stage = meta.get("stage")
                if stage not in (ALIGNMENT, INSTRUCTION):
                    raise DataError(
                        f"{where}: meta.stage {stage!r} is not {ALIGNMENT} or {INSTRUCTION}; {FIX}"
                    )
                if not isinstance(record.get("id"), str) or not record["id"]:
                    raise DataError(f"{where}: the record has no `id`; {FIX}")
                rows.append((record, turns, meta, stage))
        ids = unique_ids(record["id"] for record, *_ in rows)
        items = []
        for item_id, (record, turns, meta, stage) in zip(ids, rows, strict=True):
            question, reference = strip_image_token(turns[0][1]), turns[1][1].strip()
            if stage == ALIGNMENT:
                answer_type = CAPTION
            else:
                answer_type = CLOSED if reference_polarity(reference) is not None else OPEN
            image = record.get("image")
            items.append(
                EvalItem(
                    id=item_id,
                    question=question,
                    reference=reference,
                    image=built.image_root / image if image else None,
                    language="zh",
                    answer_type=answer_type,
                    extra={"source": meta.get("source"), "ref": meta.get("ref"), "stage": stage},
                )
            )
        return items
