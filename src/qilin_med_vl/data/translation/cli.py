"""`qilin data tm import|export`: move (English, Chinese) pairs in and out of the translation memory.

The memory is the one a build writes, OUT/translation_memory.sqlite (`--out OUT`, default the shipped
config's runs/chimed_vl), or any file given with `--cache`. It is keyed by (model, prompt version, source text). Imported pairs go under the key given by
--model and --prompt-version, which default to what `qilin data build --translator openai` uses with no
other setting, so a build with the same model and prompt version serves them without a request.

File formats: see `qilin_med_vl.data.translation.pairs`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qilin_med_vl.data.translation.config import DEFAULT_MODEL
from qilin_med_vl.data.translation.memory import TRANSLATION_MEMORY_FILE, TranslationMemory
from qilin_med_vl.data.translation.pairs import FORMATS, format_of, read_pairs, write_pairs
from qilin_med_vl.data.translation.prompt import PROMPT_VERSION
from qilin_med_vl.errors import DataError
from qilin_med_vl.llava_format import DEFAULT_BUILD_OUT


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
        "--out",
        type=Path,
        default=DEFAULT_BUILD_OUT,
        help=f"the build's output folder, whose memory is OUT/{TRANSLATION_MEMORY_FILE} "
        f"(default: {DEFAULT_BUILD_OUT}, the output of configs/data/chimed_vl.yaml)",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="a translation memory file elsewhere (instead of --out)"
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model part of the key (default: {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--prompt-version",
        default=PROMPT_VERSION,
        help=f"prompt-version part of the key (default: {PROMPT_VERSION}, the current prompt)",
    )


def memory_path(args: argparse.Namespace) -> Path:
    return args.cache or args.out / TRANSLATION_MEMORY_FILE


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    file_format = format_of(args.file, args.format)
    cache = memory_path(args)
    cache.parent.mkdir(parents=True, exist_ok=True)
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
    file_format = format_of(args.file, args.format)
    cache = memory_path(args)
    if not cache.is_file():
        raise DataError(
            f"translation memory {cache} does not exist: give the build's folder with --out OUT "
            "(or the memory file with --cache)"
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
