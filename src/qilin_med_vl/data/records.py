"""The typed hand-off objects of the dataset builder: a source row, a candidate sample, a decision.

A reader turns each row of a public file into one `SourceRow`. The builder turns each row into one
`Candidate` per training stage the source feeds (PMC-CaseReport feeds both), and every candidate ends
as exactly one `Decision`: kept (with its output record) or dropped (with a reason code). The manifest
counts decisions, so `kept + dropped == read` holds by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qilin_med_vl.data.translation.reasons import EMPTY_OUTPUT
from qilin_med_vl.llava_format import ALIGNMENT, INSTRUCTION

# Source names as they appear in configs, record ids and manifests.
PMC_OA = "pmc_oa"
PMC_CASE_REPORT = "pmc_case_report"
PMC_VQA = "pmc_vqa"
SOURCES = (PMC_OA, PMC_CASE_REPORT, PMC_VQA)

# Which stages each source feeds (paper Tables 1 and 2).
SOURCE_STAGES: dict[str, tuple[str, ...]] = {
    PMC_OA: (ALIGNMENT,),
    PMC_CASE_REPORT: (ALIGNMENT, INSTRUCTION),
    PMC_VQA: (INSTRUCTION,),
}

# Drop reason codes recorded in manifest.json and dropped-*.jsonl; images and translation add their own
# (qilin_med_vl.imaging.reasons, qilin_med_vl.data.translation.reasons).
MALFORMED_RECORD = "malformed_record"
TEXT_TOO_SHORT = "text_too_short"
TEXT_TOO_LONG = "text_too_long"
NO_IMAGE = "no_image"
TOO_MANY_IMAGES = "too_many_images"
TRANSLATION_EMPTY = EMPTY_OUTPUT  # the translator returned an empty text for a non-empty one
TRANSLATION_FAILED = "translation_failed"  # the translator refused a text without giving a reason


@dataclass(frozen=True)
class SourceRow:
    """One row of a public source file, in English, before any decision.

    `texts` maps field names (caption, context, inline, question, answer, choice_A..D) to text;
    `images` are file names relative to the source's image folder, in the order the row lists them.
    `error` is set instead when the row could not be parsed; the row is then dropped as malformed.
    """

    source: str
    index: int  # 0-based position of the row across the source's files: stable, used in ids
    ref: str = ""  # the source's own identifier (pmcid, PMC_id, Figure_path) for traceability
    images: tuple[str, ...] = ()
    texts: dict[str, str] = field(default_factory=dict)
    answer_label: str | None = None  # PMC-VQA: the letter of the correct choice
    error: str | None = None
    location: str = ""  # file and line/row, for messages


@dataclass(frozen=True)
class Candidate:
    """A would-be output record: one row seen by one stage."""

    row: SourceRow
    stage: str

    @property
    def record_id(self) -> str:
        return f"{self.row.source}-{self.row.index:09d}-{self.stage}"


@dataclass(frozen=True)
class Decision:
    """The fate of one candidate: `record` when kept, else `reason` (+ a human-readable `detail`)."""

    candidate: Candidate
    record: dict | None = None
    reason: str | None = None
    detail: str = ""

    @property
    def kept(self) -> bool:
        return self.record is not None
