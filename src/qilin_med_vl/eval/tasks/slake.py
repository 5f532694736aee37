"""SLAKE 1.0 test set: `test.json` (a JSON list), images under `imgs/`; Chinese and English questions.

Fields used: qid, img_name ("xmlab102/source.jpg"), question, answer, q_lang (en | zh),
answer_type (OPEN | CLOSED), modality, content_type, plus location, base_type, img_id kept in extra.
TaskOptions.lang picks zh, en or all questions. Item id: the record's qid.
"""

from __future__ import annotations

from qilin_med_vl.errors import DataError, QilinError
from qilin_med_vl.eval.items import CLOSED, OPEN, EvalItem
from qilin_med_vl.eval.tasks.base import BenchmarkTask
from qilin_med_vl.eval.tasks.files import find_file, read_json_list, require_fields, unique_ids

SLAKE_FIELDS = ("qid", "img_name", "question", "answer", "q_lang", "answer_type", "modality", "content_type")
LANGUAGES = ("zh", "en")
LANG_CHOICES = (*LANGUAGES, "all")
ANSWER_TYPES = {"OPEN": OPEN, "CLOSED": CLOSED}
FIX = "use SLAKE 1.0's test.json as published"


class SlakeTask(BenchmarkTask):
    name = "slake"

    def _read(self) -> list[EvalItem]:
        if self.options.lang not in LANG_CHOICES:
            raise QilinError(f"slake: --lang {self.options.lang!r} is not one of {', '.join(LANG_CHOICES)}")
        path = find_file(self.data, ["test.json"], "SLAKE's test.json and imgs/")
        image_root = path.parent / "imgs"
        records = read_json_list(path)
        rows = []
        for number, record in enumerate(records, start=1):
            where = f"{path} record {number}"
            require_fields(record, SLAKE_FIELDS, where, FIX)
            language = str(record["q_lang"]).strip()
            answer_type = ANSWER_TYPES.get(str(record["answer_type"]).strip().upper())
            if language not in LANGUAGES or answer_type is None:
                raise DataError(
                    f"{where}: q_lang {record['q_lang']!r} / answer_type {record['answer_type']!r} "
                    f"are not zh|en / OPEN|CLOSED; {FIX}"
                )
            rows.append((record, language, answer_type))
        ids = unique_ids(str(record["qid"]) for record, _, _ in rows)
        return [
            EvalItem(
                id=item_id,
                question=str(record["question"]).strip(),
                reference=str(record["answer"]).strip(),
                image=image_root / str(record["img_name"]),
                language=language,
                answer_type=answer_type,
                modality=str(record["modality"]),
                content_type=str(record["content_type"]),
                extra={name: record.get(name) for name in ("location", "base_type", "img_id")},
            )
            for item_id, (record, language, answer_type) in zip(ids, rows, strict=True)
            if self.options.lang in (language, "all")
        ]
