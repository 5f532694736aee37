"""The translations of a build that a reviewer can judge: every English text it sent, with what came back.

The texts are read again from the build's sources (the settings its manifest records), so each one is
known with its source and field; the memory the build used (same model, prompt version and file) says
what became of it:
- `service` / `import` / `review`: an accepted translation (by the service after the checks, imported
  with `qilin data tm import`, or already reviewed);
- `retry_pending`: the first answer failed a check and the retry is still to be asked;
- `dropped`: both answers failed; the record was dropped with that reason (the rejected answer is shown).
Texts the build never translated (filtered out, or no English letter in them) are not listed.
`check` is the translation checks' verdict on the Chinese shown, under the build's thresholds and
glossary: `passed`, or the reason code of the first check it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.data.build_config import BuildConfig, parse_build_config
from qilin_med_vl.data.records import SOURCE_STAGES, Candidate
from qilin_med_vl.data.templates import needed_fields
from qilin_med_vl.data.translation.checks import CheckThresholds, check_translation, chinese_share
from qilin_med_vl.data.translation.config import DEFAULT_MODEL, TranslatorConfig
from qilin_med_vl.data.translation.glossary import load_configured_glossary
from qilin_med_vl.data.translation.memory import TranslationMemory, default_memory_path
from qilin_med_vl.errors import DataError
from qilin_med_vl.llava_format import MANIFEST_FILE, read_manifest

PASSED = "passed"
RETRY_PENDING = "retry_pending"
DROPPED = "dropped"


@dataclass(frozen=True)
class ReviewItem:
    source: str
    field: str
    english: str
    chinese: str  # the accepted translation, or the rejected answer of a failed one ("" if none kept)
    state: str  # an origin of memory.py, RETRY_PENDING or DROPPED
    check: str  # PASSED or a translation reason code
    check_detail: str
    chinese_share: float
    occurrences: int  # how many fields of the build hold this English text


@dataclass(frozen=True)
class ReviewTarget:
    """Where a build's translations live: the memory file and the key the build used."""

    memory_path: Path
    model: str
    prompt_version: str
    translator: TranslatorConfig
    config: BuildConfig


def review_target(folder: Path) -> ReviewTarget:
    """The memory file and key of a translated build, from its manifest."""
    manifest = read_manifest(folder)
    config = parse_build_config(manifest.get("config") or {}, str(folder / MANIFEST_FILE))
    translator = config.translator_config(folder)
    if translator.backend == "none":
        raise DataError(
            f"{folder}: this build was made without translation (translator backend none); there is "
            "nothing to review. Build with --translator openai first"
        )
    return ReviewTarget(
        memory_path=Path(translator.cache_path or default_memory_path()),
        model=translator.model or DEFAULT_MODEL,
        prompt_version=translator.prompt_version,
        translator=translator,
        config=config,
    )


def _english_texts(config: BuildConfig) -> Iterator[tuple[str, str, str]]:
    """(source, field, English text) of every field the build translates, in build order."""
    from qilin_med_vl.data.build import read_rows

    for row in read_rows(config):
        if row.error is not None:
            continue
        for stage in SOURCE_STAGES[row.source]:
            candidate = Candidate(row, stage)
            for name in needed_fields(candidate, config.vqa_format, config.case_report_alignment_fields):
                text = row.texts.get(name, "")
                if any(character.isascii() and character.isalpha() for character in text):
                    yield row.source, name, text


def review_items(target: ReviewTarget) -> list[ReviewItem]:
    """One item per distinct English text the memory holds an outcome for, first (source, field) kept."""
    translator = target.translator
    thresholds = CheckThresholds(
        min_chinese_share=translator.min_chinese_share,
        min_length_ratio=translator.min_length_ratio,
        max_length_ratio=translator.max_length_ratio,
        length_check_min_chars=translator.length_check_min_chars,
    )
    glossary = load_configured_glossary(translator.glossary_csv, translator.use_cmekg)
    if not target.memory_path.is_file():
        raise DataError(
            f"translation memory {target.memory_path} does not exist: is this the build's folder?"
        )
    first: dict[str, tuple[str, str]] = {}
    occurrences: dict[str, int] = {}
    for source, name, text in _english_texts(target.config):
        first.setdefault(text, (source, name))
        occurrences[text] = occurrences.get(text, 0) + 1
    items = []
    with TranslationMemory(target.memory_path) as memory:
        key = (target.model, target.prompt_version)
        for english, (source, name) in first.items():
            chinese = memory.translation(*key, english)
            if chinese is not None:
                state = memory.origin(*key, english)
                failure = check_translation(english, chinese, thresholds, glossary)
                check, detail = (PASSED, "") if failure is None else (failure.reason, failure.detail)
            else:
                recorded = memory.failure(*key, english)
                if recorded is None:
                    continue
                chinese = recorded.output or ""
                state = RETRY_PENDING if recorded.attempts == 1 else DROPPED
                check, detail = recorded.reason, recorded.detail
            items.append(
                ReviewItem(
                    source=source,
                    field=name,
                    english=english,
                    chinese=chinese,
                    state=state,
                    check=check,
                    check_detail=detail,
                    chinese_share=round(chinese_share(chinese), 2) if chinese else 0.0,
                    occurrences=occurrences[english],
                )
            )
    return items
