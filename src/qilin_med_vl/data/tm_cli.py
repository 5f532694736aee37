"""`qilin data tm import|export`: move (English, Chinese) pairs in and out of the translation memory.

The memory is keyed by (model, prompt version, source text). Imported pairs go under the key given by
--model and --prompt-version, which default to what `qilin data build --translator openai` uses with no
other setting, so a build with the same model and prompt version serves them without a request.

Files:
- TSV: two columns `source<TAB>target`, an optional header row `source<TAB>target`; fields that hold a
  tab, a newline or start with a double quote are double-quoted (Python csv's excel-tab dialect, which
  is what export writes).
- JSONL: one object per line, {"source": "...", "target": "..."}.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from qilin_med_vl.data.translate import DEFAULT_MODEL
from qilin_med_vl.data.translation_memory import TranslationMemory, default_memory_path
from qilin_med_vl.data.translation_prompt import PROMPT_VERSION
from qilin_med_vl.errors import DataError

FORMATS = ("tsv", "jsonl")
FORMAT_BY_SUFFIX = {".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
TSV_HEADER = ["source", "target"]


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Translation memory: the SQLite cache of accepted EN→ZH translations, keyed by model, prompt version "
        "and source text. Import pairs you already have, export what a build translated."
    )
    actions = parser.add_subparsers(dest="tm_action", metavar="<action>")
    importer = actions.add_parser(
        "import",
        help="store (English, Chinese) pairs from a TSV or JSONL file",
        description="Store (English, Chinese) pairs under one (model, prompt version) key; a build with "
        "that model and prompt version then uses them instead of asking the service. " + _FILES_HELP,
    )
    importer.add_argument("file", type=Path, help="TSV or JSONL file of pairs")
    _add_common_arguments(importer)
    importer.add_argument(
        "--keep-existing",
        action="store_true",
        help="leave a translation already in the memory as it is (default: the imported one replaces it)",
    )
    importer.set_defaults(handler=_import)

    exporter = actions.add_parser(
        "export",
        help="write the memory's pairs for one (model, prompt version) to TSV or JSONL",
        description="Write the accepted translations under one (model, prompt version) key, sorted by "
        "source text. " + _FILES_HELP,
    )
    exporter.add_argument("file", type=Path, help="TSV or JSONL file to write (replaced if it exists)")
    _add_common_arguments(exporter)
    exporter.set_defaults(handler=_export)

    parser.set_defaults(handler=lambda args: _print_help(parser))


_FILES_HELP = (
    "TSV: `source<TAB>target` rows, optional header `source<TAB>target`, fields with tabs or newlines "
    'double-quoted. JSONL: {"source": ..., "target": ...} per line.'
)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, help="file format (default: from the file's suffix)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"translation memory file (default: {default_memory_path()}, the build's default)",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model part of the key (default: {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--prompt-version",
        default=PROMPT_VERSION,
        help=f"prompt-version part of the key (default: {PROMPT_VERSION}, the current prompt)",
    )


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _format_of(path: Path, chosen: str | None) -> str:
    if chosen:
        return chosen
    found = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"cannot tell the format of {path} from its suffix: add --format tsv or --format jsonl"
        )
    return found


def read_pairs(path: Path, file_format: str) -> Iterator[tuple[str, str]]:
    """(source, target) pairs of a TSV or JSONL file; DataError names the line and the fix."""
    if not path.is_file():
        raise DataError(f"{path} does not exist: give the TSV or JSONL file of pairs to import")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if file_format == "tsv":
            reader = csv.reader(handle, dialect="excel-tab")
            for row in reader:
                line = reader.line_num
                if not row or (line == 1 and row == TSV_HEADER):
                    continue
                if len(row) != 2 or not row[0].strip() or not row[1].strip():
                    raise DataError(
                        f"{path}, line {line}: expected two non-empty tab-separated fields (source, target), "
                        f"got {len(row)} field(s); double-quote a field that contains a tab or a newline"
                    )
                yield row[0], row[1]
        else:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}, line {line}: not JSON ({error.msg})") from error
                source = record.get("source") if isinstance(record, dict) else None
                target = record.get("target") if isinstance(record, dict) else None
                if (
                    not isinstance(source, str)
                    or not isinstance(target, str)
                    or not source.strip()
                    or not target
                ):
                    raise DataError(
                        f'{path}, line {line}: expected {{"source": "<English>", "target": "<Chinese>"}} '
                        "with two non-empty strings"
                    )
                yield source, target


def write_pairs(path: Path, file_format: str, pairs) -> int:
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        if file_format == "tsv":
            writer = csv.writer(handle, dialect="excel-tab", lineterminator="\n")
            writer.writerow(TSV_HEADER)
            for source, target in pairs:
                writer.writerow([source, target])
                count += 1
        else:
            for source, target in pairs:
                handle.write(json.dumps({"source": source, "target": target}, ensure_ascii=False) + "\n")
                count += 1
    return count


def _import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    file_format = _format_of(args.file, args.format)
    cache = args.cache or default_memory_path()
    with TranslationMemory(cache) as memory:
        pairs = tqdm(
            read_pairs(args.file, file_format),
            desc=f"importing {args.file.name}",
            unit=" pairs",
            disable=None,
        )
        counts = memory.import_pairs(args.model, args.prompt_version, pairs, replace=not args.keep_existing)
    total = counts.added + counts.replaced + counts.kept
    print(
        f"imported {total} pairs from {args.file} into {cache} under model={args.model} "
        f"prompt_version={args.prompt_version}: {counts.added} added, {counts.replaced} replaced, "
        f"{counts.kept} kept as they were"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    file_format = _format_of(args.file, args.format)
    cache = args.cache or default_memory_path()
    if not Path(cache).is_file():
        raise DataError(
            f"translation memory {cache} does not exist: give the build's cache file with --cache"
        )
    with TranslationMemory(cache) as memory:
        count = write_pairs(args.file, file_format, memory.export_pairs(args.model, args.prompt_version))
        keys = memory.keys()
    print(
        f"exported {count} pairs under model={args.model} prompt_version={args.prompt_version} "
        f"from {cache} to {args.file}"
    )
    if count == 0 and keys:
        held = ", ".join(f"model={model} prompt_version={version} ({n} pairs)" for model, version, n in keys)
        print(f"warning: nothing under that key; the memory holds {held}", file=sys.stderr)
    return 0
