"""The objects every evaluation part shares: a benchmark item, a scored prediction, the task interface.

A task reads its benchmark's public files into `EvalItem`s, says how to ask the model (`prompt`) and
how to score an answer (`score`). Backends turn prompts into predictions; the runner writes one
`ScoredItem` per line of predictions.jsonl and aggregates them into metrics.json.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

OPEN = "open"  # free-text answer, scored by recall after normalisation (exact match and F1 beside it)
CLOSED = "closed"  # a closed question (yes/no by the polarity lexicon, else exact match)
CHOICE = "choice"  # multiple choice: the letter
CAPTION = "caption"  # a description, scored by BLEU-4 and ROUGE-L
ANSWER_TYPES = (OPEN, CLOSED, CHOICE, CAPTION)


@dataclass(frozen=True)
class EvalItem:
    id: str  # stable across runs: the resume key
    question: str
    reference: str  # the gold answer (for CHOICE: the correct option's letter)
    image: Path | None
    language: str  # "zh" | "en"
    answer_type: str  # one of ANSWER_TYPES
    choices: dict[str, str] = field(default_factory=dict)  # letter -> option text (CHOICE items)
    modality: str = ""
    content_type: str = ""
    extra: dict = field(default_factory=dict)  # anything else worth keeping (source, ref, split)


@dataclass(frozen=True)
class ItemScore:
    score: float  # the headline number of this item, in [0, 1]
    details: dict = field(default_factory=dict)  # e.g. exact, f1, recall, matched_by, bleu4, rouge_l


class Task(Protocol):
    name: str

    def items(self) -> Iterator[EvalItem]: ...

    def prompt(self, item: EvalItem) -> str: ...

    def score(self, item: EvalItem, prediction: str) -> ItemScore: ...


METRIC_STYLES = ("qilin", "llava-med")  # ours (documented in docs/evaluation.md), or LLaVA-Med's formulas


@dataclass(frozen=True)
class TaskOptions:
    """What `qilin eval` passes to a task factory besides the data folder."""

    mode: str | None = None  # pmc-vqa: "choice" | "open" (None: the task's default)
    lang: str = "all"  # slake: "zh" | "en" | "all"
    metric_style: str = "qilin"  # one of METRIC_STYLES
    # where tasks write images that their files embed (parquet copies); None: beside the data
    image_cache: Path | None = None


TaskFactory = Callable[[Path, TaskOptions], Task]  # what `qilin_med_vl.eval.tasks.TASKS` maps names to
