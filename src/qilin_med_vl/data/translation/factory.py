"""`make_translator(config)`: the translator a build asks for.

Backend `none` keeps the source text (offline builds); backend `memory` answers from the translation
memory alone and drops a text it does not hold (offline builds from imported translations, such as the
demo's); backend `openai` talks to any OpenAI-compatible
chat endpoint (openai_backend.py) through a translation memory (memory.py), quality checks (checks.py)
and an optional glossary (glossary.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future

from qilin_med_vl.data.translation.config import (
    DEFAULT_MODEL,
    Translation,
    Translator,
    TranslatorConfig,
    answered,
    needs_translation,
    validate_config,
)
from qilin_med_vl.data.translation.reasons import NOT_IN_MEMORY


class KeepSourceTranslator:
    """Backend `none`: returns each text unchanged (builds without a translation service)."""

    def submit_batch(self, texts: Sequence[str]) -> Future[list[Translation]]:
        return answered(self.translate_batch(texts))

    def translate_batch(self, texts: Sequence[str]) -> list[Translation]:
        return [Translation(source=text, text=text) for text in texts]

    def close(self) -> None:
        pass


class MemoryOnlyTranslator:
    """Backend `memory`: the memory's translation under (model, prompt version), else a drop, never a request."""

    def __init__(self, memory, model: str, prompt_version: str):
        self.memory, self.model, self.prompt_version = memory, model, prompt_version

    def submit_batch(self, texts: Sequence[str]) -> Future[list[Translation]]:
        return answered(self.translate_batch(texts))

    def translate_batch(self, texts: Sequence[str]) -> list[Translation]:
        results = []
        for text in texts:
            if not needs_translation(text):
                results.append(Translation(source=text, text=text))
                continue
            target = self.memory.translation(self.model, self.prompt_version, text)
            reason = None if target is not None else NOT_IN_MEMORY
            results.append(Translation(source=text, text=target, reason=reason))
        return results

    def close(self) -> None:
        self.memory.close()


def make_translator(config: TranslatorConfig) -> Translator:
    validate_config(config)
    if config.backend == "none":
        return KeepSourceTranslator()
    from qilin_med_vl.data.translation.memory import TranslationMemory, default_memory_path

    if config.backend == "memory":
        memory = TranslationMemory(config.cache_path or default_memory_path())
        return MemoryOnlyTranslator(memory, config.model or DEFAULT_MODEL, config.prompt_version)
    # the openai backend's modules need httpx (the `data` extra): import them only when asked for
    from qilin_med_vl.data.translation.glossary import load_configured_glossary
    from qilin_med_vl.data.translation.openai_backend import OpenAITranslator

    glossary = load_configured_glossary(config.glossary_csv, config.use_cmekg)
    memory = TranslationMemory(config.cache_path or default_memory_path())
    try:
        return OpenAITranslator(config, memory, glossary)
    except BaseException:
        memory.close()
        raise
