"""The translator's settings and its interface: `TranslatorConfig`, `Translator`, `Translation`.

`submit_batch` starts translating a batch and returns at once, with a future of one `Translation` per
input text, in order; several batches may be in flight together (the builder keeps the next batch's
requests running while it writes the current one). `translate_batch` is the same, waited for. A
translation that fails its quality checks has `text=None` and a `reason` code that the builder records
in the manifest (codes: reasons.py). docs/translation.md is the user's guide.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from qilin_med_vl.config import ConfigError
from qilin_med_vl.data.translation.prompt import PROMPT_VERSION

BACKENDS = ("none", "memory", "openai")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-3.5-turbo"  # the paper translated with GPT-3.5
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


@dataclass(frozen=True)
class Translation:
    source: str
    text: str | None  # None when the record must be dropped
    reason: str | None = None  # drop reason code when text is None


@dataclass
class TranslatorConfig:
    backend: str = "none"  # "none" | "memory" (translation memory only, offline) | "openai"
    base_url: str | None = None  # None: DEFAULT_BASE_URL
    model: str | None = None  # None: DEFAULT_MODEL
    api_key_env: str | None = None  # name of the variable holding the key; None: DEFAULT_API_KEY_ENV
    # translation memory (SQLite); None: $XDG_CACHE_HOME/qilin-med-vl/translation_memory.sqlite
    cache_path: str | None = None
    prompt_version: str = PROMPT_VERSION  # part of the memory key; bump it when the prompt changes
    concurrency: int = 8  # requests in flight at most
    timeout_s: float = 60.0  # per request
    max_retries: int = 5  # repeats of a request after 429/5xx/timeout/connection error
    retry_backoff_s: float = 1.0  # first backoff; doubles per retry, jittered
    retry_backoff_max_s: float = 60.0
    temperature: float = 0.0
    max_tokens: int | None = None  # None: the endpoint's default
    glossary_csv: str | None = None  # user glossary, header english,chinese
    use_cmekg: bool = False  # add CMeKG's English→Chinese term pairs (needs the pycmekg package)
    retry_failed: bool = False  # ask again for texts the memory records as dropped
    min_chinese_share: float = 0.5  # quality checks: see translation_checks.py
    min_length_ratio: float = 0.1
    max_length_ratio: float = 1.2
    length_check_min_chars: int = 30


def needs_translation(text: str) -> bool:
    """Numbers, labels and text already in Chinese hold no English letter: they are kept as they are."""
    return any(character.isalpha() and character.isascii() for character in text)


class Translator(Protocol):
    def submit_batch(self, texts: Sequence[str]) -> Future[list[Translation]]:
        """Start translating `texts`; the future gives one Translation per text, in order (or the error
        that stops the run)."""
        ...

    def translate_batch(self, texts: Sequence[str]) -> list[Translation]:
        """`submit_batch(texts)`, waited for."""
        ...

    def close(self) -> None: ...


def answered(translations: list[Translation]) -> Future[list[Translation]]:
    """An already completed `submit_batch` future, for backends that answer without waiting."""
    future: Future[list[Translation]] = Future()
    future.set_result(translations)
    return future


def _type_problems(config: TranslatorConfig) -> list[str]:
    """Settings whose value is not of the field's type (YAML gives "8" for a quoted 8, true for yes)."""
    problems = []
    hints = typing.get_type_hints(TranslatorConfig)
    for setting in dataclasses.fields(config):
        value = getattr(config, setting.name)
        allowed = tuple(typing.get_args(hints[setting.name]) or (hints[setting.name],))
        if value is None and type(None) in allowed:
            continue
        if isinstance(value, bool):
            ok = bool in allowed
        else:
            ok = isinstance(value, allowed) or (float in allowed and isinstance(value, int))
        if not ok:
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in allowed)
            problems.append(f"{setting.name} is {value!r}; it must be {names}")
    return problems


def validate_config(config: TranslatorConfig) -> None:
    """Raise ConfigError naming the bad settings and what they must be."""
    problems = _type_problems(config)
    if problems:
        raise ConfigError("translator settings: " + "; ".join(problems))
    if config.backend not in BACKENDS:
        problems.append(f"backend is {config.backend!r}; choose one of {', '.join(BACKENDS)}")
    if config.base_url is not None and not config.base_url.startswith(("http://", "https://")):
        problems.append(f"base_url {config.base_url!r} must start with http:// or https://")
    if config.concurrency < 1:
        problems.append(f"concurrency is {config.concurrency}; it must be 1 or more")
    if config.max_retries < 0:
        problems.append(f"max_retries is {config.max_retries}; it must be 0 or more")
    if config.timeout_s <= 0 or config.retry_backoff_s < 0 or config.retry_backoff_max_s < 0:
        problems.append("timeout_s must be > 0, retry_backoff_s and retry_backoff_max_s >= 0")
    if not 0.0 <= config.min_chinese_share <= 1.0:
        problems.append(f"min_chinese_share is {config.min_chinese_share}; it must lie in [0, 1]")
    if not 0.0 <= config.min_length_ratio < config.max_length_ratio:
        problems.append(
            f"length ratio bounds [{config.min_length_ratio}, {config.max_length_ratio}] must satisfy "
            "0 <= min_length_ratio < max_length_ratio"
        )
    if not config.prompt_version:
        problems.append("prompt_version must not be empty")
    if problems:
        raise ConfigError("translator settings: " + "; ".join(problems))
