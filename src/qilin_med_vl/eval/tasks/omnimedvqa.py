"""OmniMedVQA, open-access part: `QA_information/Open-access/*.json`, each a JSON list of questions.

Fields: image_path (relative to the dataset root), question, gt_answer (an option's text),
option_A..option_D (two to four present), question_type, modality_type (one file spells it
`modality`), question_id and dataset where present. Every question is multiple choice; the reference
is the letter of the option equal to gt_answer. Item id: `<file stem>/<question_id>` (or a hash of
image path and question when a record has no question_id).
"""

from __future__ import annotations

from qilin_med_vl.errors import DataError
from qilin_med_vl.eval.items import CHOICE, EvalItem
from qilin_med_vl.eval.normalize import normalize_text
from qilin_med_vl.eval.tasks.base import BenchmarkTask
from qilin_med_vl.eval.tasks.files import content_id, read_json_list, require_fields, unique_ids

QA_FOLDER = "QA_information/Open-access"
FIELDS = ("image_path", "question", "gt_answer", "question_type")
MODALITY_SPELLINGS = ("modality_type", "modality")
LETTERS = ("A", "B", "C", "D")
MIN_OPTIONS = 2
FIX = "use OmniMedVQA's QA_information/Open-access files as published"


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


class OmniMedVqaTask(BenchmarkTask):
    name = "omnimedvqa"

    def _read(self) -> list[EvalItem]:
        folder = self.data / QA_FOLDER
        files = sorted(folder.glob("*.json"))
        if not files:
            raise DataError(
                f"{folder}: no JSON files; give the OmniMedVQA root (the folder holding QA_information)"
            )
        rows = []
        for path in files:
            for number, record in enumerate(read_json_list(path), start=1):
                where = f"{path} record {number}"
                require_fields(record, FIELDS, where, FIX)
                rows.append((path, where, record))
        ids = unique_ids(self._base_id(path, record) for path, _, record in rows)
        return [
            self._item(item_id, where, record) for item_id, (_, where, record) in zip(ids, rows, strict=True)
        ]

    @staticmethod
    def _base_id(path, record: dict) -> str:
        question_id = _text(record.get("question_id"))
        return (
            f"{path.stem}/{question_id or content_id(_text(record['image_path']), _text(record['question']))}"
        )

    def _item(self, item_id: str, where: str, record: dict) -> EvalItem:
        choices = {letter: _text(record.get(f"option_{letter}")) for letter in LETTERS}
        choices = {letter: text for letter, text in choices.items() if text}
        if len(choices) < MIN_OPTIONS:
            raise DataError(f"{where}: fewer than {MIN_OPTIONS} of option_A..option_D are given; {FIX}")
        answer = normalize_text(_text(record["gt_answer"]))
        letter = next((key for key, text in choices.items() if normalize_text(text) == answer), None)
        if letter is None:
            raise DataError(f"{where}: gt_answer {record['gt_answer']!r} is none of the options; {FIX}")
        modality = next((_text(record[name]) for name in MODALITY_SPELLINGS if name in record), "")
        return EvalItem(
            id=item_id,
            question=_text(record["question"]),
            reference=letter,
            image=self.data / _text(record["image_path"]),
            language="en",
            answer_type=CHOICE,
            choices=choices,
            modality=modality,
            content_type=_text(record["question_type"]),
            extra={"dataset": record.get("dataset"), "answer_text": _text(record["gt_answer"])},
        )
