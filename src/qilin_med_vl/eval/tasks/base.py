"""What every benchmark task shares: options checked, items read (and so checked) once, prompt and score.

A task subclass only reads its files (`_read`); prompts come from the shipped templates and scores
from `qilin_med_vl.eval.scoring`, so every benchmark is asked and scored by the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from qilin_med_vl.errors import DataError, QilinError
from qilin_med_vl.eval.items import METRIC_STYLES, EvalItem, ItemScore, TaskOptions
from qilin_med_vl.eval.prompts import render_prompt
from qilin_med_vl.eval.scoring import score_item


class BenchmarkTask:
    name: ClassVar[str]

    def __init__(self, data: Path, options: TaskOptions | None = None):
        self.data = Path(data)
        self.options = options if options is not None else TaskOptions()
        if self.options.metric_style not in METRIC_STYLES:
            raise QilinError(
                f"metric style {self.options.metric_style!r} is not one of {', '.join(METRIC_STYLES)}"
            )
        self._items = self._read()
        if not self._items:
            raise DataError(f"{self.data}: no {self.name} test items found; check the folder and the options")
        self._check_images_present()

    def _check_images_present(self) -> None:
        """Fail early when no image is where the files say (images not unpacked, wrong folder)."""
        images = [item.image for item in self._items if item.image is not None]
        if images and not any(path.is_file() for path in images):
            raise DataError(
                f"{self.data}: none of the {len(images)} images of {self.name} exists (the first would be "
                f"{images[0]}); unpack the benchmark's images there"
            )

    def _read(self) -> list[EvalItem]:
        raise NotImplementedError

    def items(self) -> Iterator[EvalItem]:
        return iter(self._items)

    def prompt(self, item: EvalItem) -> str:
        return render_prompt(self.name, item)

    def score(self, item: EvalItem, prediction: str) -> ItemScore:
        return score_item(item, prediction, self.options.metric_style)
