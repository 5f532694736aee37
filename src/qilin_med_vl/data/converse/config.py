"""Settings of `qilin data converse`: `ConverseConfig`, read from `--option KEY=VALUE` and the flags, checked.

The glossary settings default to the build's own translator settings (its manifest), so the answers are
held to the glossary the translations were held to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qilin_med_vl.config import ConfigError
from qilin_med_vl.data.converse.prompt import PROMPT_VERSION
from qilin_med_vl.data.records import PMC_CASE_REPORT, PMC_OA

CONVERSE_SOURCES = (PMC_CASE_REPORT, PMC_OA)  # case reports (context, inline, QA) and PMC-OA captions
MIN_ROUNDS, MAX_ROUNDS = 2, 6  # the range the prompt asks for; fewer kept rounds drop the conversation
CONVERSATION_MEMORY_FILE = "conversation_memory.sqlite"  # in the build folder unless cache_path is set


@dataclass
class ConverseConfig:
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    cache_path: str | None = None  # None: BUILD/conversation_memory.sqlite
    prompt_version: str = PROMPT_VERSION  # part of the memory key; bump it when the prompt changes
    sources: list[str] = field(default_factory=lambda: list(CONVERSE_SOURCES))
    min_rounds: int = MIN_ROUNDS
    max_rounds: int = MAX_ROUNDS
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 60.0
    temperature: float = 0.0
    max_tokens: int | None = None
    batch_size: int = 256  # figures whose requests run together before their records are written
    # price of the endpoint in your currency per million tokens, for the manifest's cost; 0: not counted
    input_price_per_million: float = 0.0
    output_price_per_million: float = 0.0
    glossary_csv: str | None = None  # None: the build's translator glossary, if it had one
    use_cmekg: bool | None = None  # None: as the build's translator


def validate_converse_config(config: ConverseConfig) -> None:
    """Raise ConfigError naming every bad setting and what it must be."""
    problems = []
    if not config.base_url.startswith(("http://", "https://")):
        problems.append(f"base_url {config.base_url!r} must start with http:// or https://")
    unknown = sorted(set(config.sources) - set(CONVERSE_SOURCES))
    if unknown or not config.sources:
        problems.append(f"sources {config.sources!r}: choose among {', '.join(CONVERSE_SOURCES)}")
    if not MIN_ROUNDS <= config.min_rounds <= config.max_rounds <= MAX_ROUNDS:
        problems.append(
            f"rounds {config.min_rounds}..{config.max_rounds}: need "
            f"{MIN_ROUNDS} <= min_rounds <= max_rounds <= {MAX_ROUNDS}"
        )
    if config.concurrency < 1 or config.batch_size < 1:
        problems.append("concurrency and batch_size must be 1 or more")
    if config.max_retries < 0 or config.timeout_s <= 0 or config.retry_backoff_s < 0:
        problems.append("max_retries and retry_backoff_s must be >= 0, timeout_s > 0")
    if config.input_price_per_million < 0 or config.output_price_per_million < 0:
        problems.append("prices must be >= 0")
    if not config.prompt_version:
        problems.append("prompt_version must not be empty")
    if problems:
        raise ConfigError("converse settings: " + "; ".join(problems))
