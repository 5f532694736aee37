"""Backend for a local checkpoint directory: our inference Engine, greedy, a batch per `answer` call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval.backend import AnswerCallback, Question, load_picture
from qilin_med_vl.eval.weights import weight_files, weights_sha256


class EngineBackend:
    def __init__(
        self, directory: Path, max_new_tokens: int, device: str | None = None, dtype: str = "auto"
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise QilinError(
                f"--model {directory}: no such checkpoint directory; give a folder written by "
                "`qilin model create`, `qilin train` or `qilin convert` (or --endpoint URL --model NAME)"
            )
        if not weight_files(self.directory):
            raise QilinError(f"--model {directory}: the folder holds no weight files (*.safetensors, *.bin)")
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.dtype = dtype
        self._engine = None
        self._identity: dict | None = None

    def identity(self) -> dict:
        if self._identity is None:
            self._identity = {
                "kind": "checkpoint",
                "directory": str(self.directory.resolve()),
                "weights_sha256": weights_sha256(self.directory),
            }
        return self._identity

    def answer(self, questions: Sequence[Question], on_answer: AnswerCallback) -> None:
        from qilin_med_vl.infer.engine import GenerationRequest, RequestError, SamplingSettings

        engine = self._loaded()
        settings = SamplingSettings(max_new_tokens=self.max_new_tokens, temperature=0.0)
        requests, positions = [], []
        for position, question in enumerate(questions):
            request = GenerationRequest(_messages(question), settings)
            try:
                engine.check(request)
            except RequestError as error:  # e.g. a prompt longer than the context: this item only
                on_answer(position, "", str(error))
                continue
            requests.append(request)
            positions.append(position)
        if not requests:
            return
        for position, completion in zip(positions, engine.generate_batch(requests), strict=True):
            on_answer(position, completion.text, None)

    def _loaded(self):
        if self._engine is None:
            import torch

            from qilin_med_vl.infer.engine import Engine

            # a benchmark is thousands of generations: use the GPU when there is one and none was named
            device = self.device or ("cuda" if torch.cuda.is_available() else None)
            self._engine = Engine.from_pretrained(self.directory, dtype=self.dtype, device=device)
        return self._engine

    def close(self) -> None:
        self._engine = None


def _messages(question: Question) -> list[dict]:
    content = (
        []
        if question.image is None
        else [{"type": "image", "image": load_picture(question.image, question.blank)}]
    )
    return [{"role": "user", "content": [*content, {"type": "text", "text": question.prompt}]}]
