"""`make_translator(config)`: the translator a build asks for.

Backend `none` keeps the source text (offline builds); backend `openai` talks to any OpenAI-compatible
chat endpoint (openai_backend.py) through a translation memory (memory.py), quality checks (checks.py)
and an optional glossary (glossary.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from qilin_med_vl.data.translation.config import Translation, Translator, TranslatorConfig, validate_config


class KeepSourceTranslator:
    """Backend `none`: returns each text unchanged (builds without a translation service)."""

    def translate_batch(self, texts: Sequence[str]) -> list[Translation]:
        return [Translation(source=text, text=text) for text in texts]

    def close(self) -> None:
        pass


def make_translator(config: TranslatorConfig) -> Translator:
    validate_config(config)
    if config.backend == "none":
        return KeepSourceTranslator()
    # the openai backend's modules need httpx (the `data` extra): import them only when asked for
    from qilin_med_vl.data.translation.glossary import load_configured_glossary
    from qilin_med_vl.data.translation.memory import TranslationMemory, default_memory_path
    from qilin_med_vl.data.translation.openai_backend import OpenAITranslator

    glossary = load_configured_glossary(config.glossary_csv, config.use_cmekg)
    memory = TranslationMemory(config.cache_path or default_memory_path())
    try:
        return OpenAITranslator(config, memory, glossary)
    except BaseException:
        memory.close()
        raise
