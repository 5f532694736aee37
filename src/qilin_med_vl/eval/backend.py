"""What the runner asks a model through: a `Question` in, its answer text out, reported per question.

Two backends implement `Backend`: `engine_backend.EngineBackend` (a checkpoint directory, our Engine)
and `endpoint_backend.EndpointBackend` (any OpenAI-compatible chat endpoint). Both decode greedily, and
both say who they are (`identity`) without loading anything, so run.json can be checked before a model
is loaded and a finished run resumes without loading one at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_BATCH_SIZE = 8  # a checkpoint's items per generate call
# an endpoint's items handed over at once, per request slot: a batch waits for its slowest answer, so
# batches several times --concurrency keep every slot busy while most of the batch finishes
ENDPOINT_BATCH_PER_SLOT = 8
DEFAULT_EVAL_MAX_NEW_TOKENS = 128  # benchmark answers are short; captions fit too

AnswerCallback = Callable[[int, str, str | None], None]  # (question index, answer, refusal reason or None)


BLANK_COLOUR = (128, 128, 128)  # the picture of a blind run: uniform grey, the same size as the real one


@dataclass(frozen=True)
class Question:
    prompt: str
    image: Path | None
    blank: bool = False  # ablation: the model gets a uniform picture instead of this one


class Backend(Protocol):
    def identity(self) -> dict:
        """What run.json records as the model; two runs may share a folder only if these are equal."""
        ...

    def answer(self, questions: Sequence[Question], on_answer: AnswerCallback) -> None:
        """Answer every question, calling `on_answer` (from this thread) as each answer is known.

        A question the model's service refuses for good (e.g. HTTP 400) is reported with an empty answer
        and the reason; any other failure raises a QilinError after the answers already reported."""
        ...

    def close(self) -> None: ...


def load_picture(image: Path, blank: bool = False):
    """The question's picture as an RGB PIL image, whatever its format (PNG, JPEG, DICOM, NIfTI); with
    `blank`, a uniform grey picture of the same size, which carries nothing but its shape."""
    from PIL import Image

    from qilin_med_vl.imaging import load_study

    picture = load_study(image).image
    return Image.new("RGB", picture.size, BLANK_COLOUR) if blank else picture
