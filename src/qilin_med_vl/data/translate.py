"""English→Chinese translation of dataset texts: the interface the dataset builder calls.

`make_translator(config)` returns a `Translator`; `translate_batch` returns one `Translation` per input
text, in order. A translation that fails its quality checks has `text=None` and a `reason` code that the
builder records in the manifest. Backend `none` keeps the source text (offline builds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Translation:
    source: str
    text: str | None  # None when the record must be dropped
    reason: str | None = None  # drop reason code when text is None


@dataclass
class TranslatorConfig:
    backend: str = "none"  # "none" | "openai"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None


class Translator(Protocol):
    def translate_batch(self, texts: Sequence[str]) -> list[Translation]: ...

    def close(self) -> None: ...


class KeepSourceTranslator:
    """Backend `none`: returns each text unchanged (builds without a translation service)."""

    def translate_batch(self, texts: Sequence[str]) -> list[Translation]:
        return [Translation(source=text, text=text) for text in texts]

    def close(self) -> None:
        pass


def make_translator(config: TranslatorConfig) -> Translator:
    if config.backend == "none":
        return KeepSourceTranslator()
    raise NotImplementedError(f"translator backend {config.backend!r} is not built yet")
