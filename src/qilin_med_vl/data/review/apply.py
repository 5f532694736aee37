"""Writing a filled-in review sheet into the translation memory, as reviewed translations.

Per row: no verdict and no correction: not reviewed, skipped. A correction: stored as the translation
(fixed, or accepted when it equals the machine's text). `accept` without a correction: the machine's
text is stored as it is, which also turns a dropped translation into a kept one. `reject` without a
correction: counted, nothing stored. Stored rows get origin `review` (memory.py): the build's
translator serves the memory before asking the service, so from then on a build with the same model and
prompt version uses the reviewed text and never replaces it with machine output.

Every row is checked before anything is written: a verdict outside accept/fix/reject, `fix` without a
correction, or an English text the memory has no outcome for under the row's key (edited, or a sheet
of another build) stops the import naming the row, and nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.data.review.agreement import ACCEPTED, FIXED, REJECTED, Judgement, edit_distance
from qilin_med_vl.data.review.sheets import VERDICTS, SheetRow
from qilin_med_vl.data.translation.memory import ORIGIN_REVIEW, TranslationMemory
from qilin_med_vl.errors import DataError


@dataclass(frozen=True)
class Decision:
    row: SheetRow
    outcome: str  # ACCEPTED, FIXED or REJECTED
    text: str | None  # what to store; None for REJECTED


def decide(row: SheetRow, where: Path) -> Decision | None:
    """What a reviewed row asks for; None for a row nobody reviewed."""
    verdict = row.verdict.strip().lower()
    correction = row.correction.strip()
    if not verdict and not correction:
        return None
    if verdict and verdict not in VERDICTS:
        raise DataError(
            f"{where}, row {row.line}: verdict {row.verdict!r}; write one of {', '.join(VERDICTS)} (or leave it "
            "empty with a correction)"
        )
    if correction:
        return Decision(row, ACCEPTED if correction == row.chinese else FIXED, correction)
    if verdict == "fix":
        raise DataError(f"{where}, row {row.line}: verdict fix needs the corrected Chinese in `correction`")
    if verdict == "reject":
        return Decision(row, REJECTED, None)
    if not row.chinese.strip():
        raise DataError(
            f"{where}, row {row.line}: accept, but there is no Chinese to accept; write a correction instead"
        )
    return Decision(row, ACCEPTED, row.chinese)


def judgement(decision: Decision) -> Judgement:
    distance = None if decision.text is None else edit_distance(decision.row.chinese, decision.text)
    return Judgement(check=decision.row.check, outcome=decision.outcome, distance=distance)


def apply_review(memory_path: Path, rows: list[SheetRow], where: Path) -> list[Decision]:
    """Check every row, then store the reviewed translations; returns the decisions of reviewed rows."""
    decisions = [decision for row in rows if (decision := decide(row, where)) is not None]
    with TranslationMemory(memory_path) as memory:
        for decision in decisions:
            row = decision.row
            known = memory.translation(row.model, row.prompt_version, row.english) is not None
            if not known and memory.failure(row.model, row.prompt_version, row.english) is None:
                raise DataError(
                    f"{where}, row {row.line}: {memory_path} has no translation of this English text under "
                    f"model={row.model} prompt_version={row.prompt_version}; keep `english`, `model` and "
                    "`prompt_version` as exported, and import into the build the sheet came from (--out)"
                )
        for decision in decisions:
            if decision.text is not None:
                row = decision.row
                memory.record_translation(
                    row.model, row.prompt_version, row.english, decision.text, ORIGIN_REVIEW
                )
    return decisions
