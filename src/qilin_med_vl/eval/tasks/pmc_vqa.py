"""PMC-VQA test sets: v1 `test_clean.csv` / `test.csv` (images in `images/`), v2 `test_2.csv` (`figures/`).

v1 columns: Figure_path, Question, Answer (the option's plain text, kept as is: "E. coli" stays
"E. coli"), Choice A..D written " A:text", Answer_label (the letter; early copies spell both answer
columns `Anwser`). v2 columns: index, Figure_path, Caption, Question, Choice A..D, Answer (the
letter), split. TaskOptions.mode "choice" (default: options in the prompt, the answer is a letter)
or "open" (no options; the reference is the correct option's text). Item id: v2 `index`, v1 a hash
of figure and question.
"""

from __future__ import annotations

import re
from pathlib import Path

from qilin_med_vl.errors import DataError, QilinError
from qilin_med_vl.eval.items import CHOICE, OPEN, EvalItem
from qilin_med_vl.eval.tasks.base import BenchmarkTask
from qilin_med_vl.eval.tasks.files import content_id, find_file, read_csv, unique_ids

LETTERS = ("A", "B", "C", "D")
CHOICE_COLUMNS = tuple(f"Choice {letter}" for letter in LETTERS)
COMMON_COLUMNS = ("Figure_path", "Question", *CHOICE_COLUMNS)
V2_COLUMNS = ("index", "Caption", "split")
ANSWER_SPELLINGS = ("Answer", "Anwser")
LABEL_SPELLINGS = ("Answer_label", "Anwser_label")
MODES = (CHOICE, OPEN)
TEST_FILES = ["test_clean.csv", "test.csv", "test_2.csv"]
FIX = "give PMC-VQA's test_clean.csv, test.csv or test_2.csv as published"


def option_text(value: str, letter: str) -> str:
    """ " A:Pneumothorax" in column Choice A -> "Pneumothorax"; only that column's own letter is removed."""
    return re.sub(rf"^\s*{letter}\s*[:：]\s*", "", value or "").strip()


def _column(header: list[str], spellings: tuple[str, ...]) -> str | None:
    return next((name for name in spellings if name in header), None)


class PmcVqaTask(BenchmarkTask):
    name = "pmc-vqa"

    def _read(self) -> list[EvalItem]:
        mode = self.options.mode or CHOICE
        if mode not in MODES:
            raise QilinError(f"pmc-vqa: --mode {mode!r} is not one of {', '.join(MODES)}")
        path = find_file(self.data, TEST_FILES, "PMC-VQA's test CSV and its images")
        header, rows = read_csv(path, COMMON_COLUMNS, FIX)
        answer_column = _column(header, ANSWER_SPELLINGS)
        if answer_column is None:
            raise DataError(f"{path}: no Answer column (found {', '.join(header)}); {FIX}")
        is_v2 = all(name in header for name in V2_COLUMNS)
        label_column = None if is_v2 else _column(header, LABEL_SPELLINGS)
        image_root = path.parent / ("figures" if is_v2 else "images")
        parsed = []
        for line, row in rows:
            where = f"{path}:{line}"
            choices = {letter: option_text(row[f"Choice {letter}"], letter) for letter in LETTERS}
            answer = row[answer_column].strip()
            if is_v2 or label_column is None:
                letter = (
                    answer.upper() if answer.upper() in LETTERS else self._letter_of_text(answer, choices)
                )
            else:
                letter = row[label_column].strip().upper()
            if letter not in LETTERS:
                raise DataError(f"{where}: the correct option {letter or answer!r} is not one of A-D; {FIX}")
            parsed.append((row, choices, letter, answer))
        if is_v2:
            ids = unique_ids(str(row["index"]).strip() for row, *_ in parsed)
        else:
            ids = unique_ids(content_id(row["Figure_path"], row["Question"]) for row, *_ in parsed)
        return [
            self._item(item_id, row, choices, letter, answer, image_root, mode, path)
            for item_id, (row, choices, letter, answer) in zip(ids, parsed, strict=True)
        ]

    @staticmethod
    def _letter_of_text(answer: str, choices: dict[str, str]) -> str:
        """The letter whose option text is `answer` (files without an answer-label column)."""
        return next((letter for letter, text in choices.items() if text.casefold() == answer.casefold()), "")

    @staticmethod
    def _item(item_id, row, choices, letter, answer, image_root: Path, mode: str, path: Path) -> EvalItem:
        extra = {"file": path.name, "answer_letter": letter, "answer_text": choices[letter]}
        if "Caption" in row:
            extra["caption"] = row["Caption"]
        if answer.upper() not in LETTERS:
            extra["answer_column"] = answer  # v1: the published answer text, never stripped of a prefix
        common = dict(
            id=item_id,
            question=row["Question"].strip(),
            image=image_root / row["Figure_path"].strip(),
            language="en",
            extra=extra,
        )
        if mode == CHOICE:
            return EvalItem(**common, reference=letter, answer_type=CHOICE, choices=choices)
        return EvalItem(**common, reference=choices[letter], answer_type=OPEN)
