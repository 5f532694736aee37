"""The build configuration: `configs/data/chimed_vl.yaml` read into typed settings, every key checked.

Read with the project's one config loader (qilin_med_vl.config): `key=value` overrides on the command
line work as in `qilin train`. Relative paths in the YAML are resolved against the current directory (where `qilin data build`
runs). The `translator:` section is passed field by field to `TranslatorConfig`, so whatever fields
that dataclass has are accepted, and nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qilin_med_vl.config import ConfigError, apply_overrides, from_mapping, load_yaml
from qilin_med_vl.data.composite import ImageSettings
from qilin_med_vl.data.filters import DEFAULT_MIN_CHARS, TextFilterSettings
from qilin_med_vl.data.records import SOURCES
from qilin_med_vl.data.templates import DEFAULT_CASE_REPORT_ALIGNMENT_FIELDS, VQA_FORMATS
from qilin_med_vl.data.translation.config import TranslatorConfig
from qilin_med_vl.data.translation.memory import TRANSLATION_MEMORY_FILE

DEFAULT_BATCH_SIZE = 64  # texts are translated and records written this many rows at a time
TOP_LEVEL_KEYS = (
    "out",
    "seed",
    "batch_size",
    "sources",
    "filters",
    "images",
    "templates",
    "split",
    "translator",
)


@dataclass(frozen=True)
class SourceConfig:
    records: tuple[Path, ...]
    images: Path


@dataclass(frozen=True)
class BuildConfig:
    sources: dict[str, SourceConfig]
    out: Path | None = None
    seed: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    filters: TextFilterSettings = field(default_factory=TextFilterSettings)
    images: ImageSettings = field(default_factory=ImageSettings)
    vqa_format: str = "open"
    case_report_alignment_fields: tuple[str, ...] = DEFAULT_CASE_REPORT_ALIGNMENT_FIELDS
    translator: dict[str, Any] = field(default_factory=dict)
    test_fraction: float = 0.0  # share of PMC articles held out as the `test` split (data/split.py)

    def translator_config(self, out: Path) -> TranslatorConfig:
        """The translator settings; the translation memory lives in the output folder unless set."""
        return TranslatorConfig(**{"cache_path": str(out / TRANSLATION_MEMORY_FILE), **self.translator})

    def to_json(self) -> dict:
        """The settings that decide the output, as recorded in manifest.json (not batch size or paths out)."""
        return {
            "seed": self.seed,
            "sources": {
                name: {"records": [str(path) for path in source.records], "images": str(source.images)}
                for name, source in self.sources.items()
            },
            "filters": {
                "min_chars": dict(sorted(self.filters.min_chars.items())),
                "max_chars": self.filters.max_chars,
            },
            "images": dataclasses.asdict(self.images),
            "templates": {
                "vqa_format": self.vqa_format,
                "case_report_alignment_fields": list(self.case_report_alignment_fields),
            },
            "split": {"test": self.test_fraction},
            "translator": {key: _jsonable(value) for key, value in sorted(self.translator.items())},
        }


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _section(data: dict, name: str, known: tuple[str, ...], where: str) -> dict:
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: '{name}' must be a mapping")
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} in '{name}'; known: {', '.join(known)}"
        )
    return section


def translator_fields() -> tuple[str, ...]:
    return tuple(item.name for item in dataclasses.fields(TranslatorConfig))


def parse_build_config(data: dict, where: str) -> BuildConfig:
    """Typed settings from a parsed YAML mapping; `where` names the file in error messages."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the build config must be a YAML mapping")
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(TOP_LEVEL_KEYS)}")
    sources_section = _section(data, "sources", SOURCES, where)
    if not sources_section:
        raise ConfigError(f"{where}: 'sources' names no source; give at least one of {', '.join(SOURCES)}")
    sources = {}
    for name in SOURCES:  # fixed order: the order rows are read and records are written
        if name not in sources_section:
            continue
        entry = _section(sources_section, name, ("records", "images"), f"{where}: sources")
        if "records" not in entry or "images" not in entry:
            raise ConfigError(
                f"{where}: sources.{name} needs 'records' (file or list of files) and 'images' (folder)"
            )
        files = entry["records"] if isinstance(entry["records"], list) else [entry["records"]]
        sources[name] = SourceConfig(
            records=tuple(Path(str(path)) for path in files), images=Path(str(entry["images"]))
        )
    filters = _section(data, "filters", ("min_chars", "max_chars"), where)
    min_chars = dict(DEFAULT_MIN_CHARS)
    for key, value in (filters.get("min_chars") or {}).items():
        if key not in DEFAULT_MIN_CHARS:
            raise ConfigError(
                f"{where}: filters.min_chars.{key} is not a text field; known: {', '.join(DEFAULT_MIN_CHARS)}"
            )
        min_chars[key] = int(value)
    images = from_mapping(ImageSettings, data.get("images"), f"{where}: images")
    templates = _section(data, "templates", ("vqa_format", "case_report_alignment_fields"), where)
    vqa_format = templates.get("vqa_format", "open")
    if vqa_format not in VQA_FORMATS:
        raise ConfigError(
            f"{where}: templates.vqa_format must be one of {', '.join(VQA_FORMATS)}, not {vqa_format!r}"
        )
    alignment_fields = tuple(
        templates.get("case_report_alignment_fields", DEFAULT_CASE_REPORT_ALIGNMENT_FIELDS)
    )
    if not alignment_fields or not set(alignment_fields) <= {"inline", "context"}:
        raise ConfigError(f"{where}: templates.case_report_alignment_fields takes 'inline' and/or 'context'")
    translator = _section(data, "translator", translator_fields(), where)
    split = _section(data, "split", ("test",), where)
    try:
        test_fraction = float(split.get("test", 0.0))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: split.test must be a number, e.g. 0.02") from None
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"{where}: split.test is {test_fraction}; it must be in [0, 1), e.g. 0.02")
    return BuildConfig(
        sources=sources,
        out=Path(str(data["out"])) if data.get("out") else None,
        seed=int(data.get("seed", 0)),
        batch_size=int(data.get("batch_size", DEFAULT_BATCH_SIZE)),
        filters=TextFilterSettings(
            min_chars=min_chars, max_chars=int(filters.get("max_chars", TextFilterSettings().max_chars))
        ),
        images=images,
        vqa_format=vqa_format,
        case_report_alignment_fields=alignment_fields,
        translator=dict(translator),
        test_fraction=test_fraction,
    )


def load_build_config(path: Path, overrides: list[str] | None = None) -> BuildConfig:
    """The build config in `path` with `key=value` overrides (`seed=3`, `translator.model=M`) applied."""
    return parse_build_config(apply_overrides(load_yaml(path, "build config"), overrides or []), str(path))
