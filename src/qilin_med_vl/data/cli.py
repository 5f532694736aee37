"""CLI registration for `qilin data`: build, link-images, stats, tm (translation memory), converse, review."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qilin_med_vl.data.converse import cli as converse_cli
from qilin_med_vl.data.review import cli as review_cli
from qilin_med_vl.data.synth import cli as synth_cli
from qilin_med_vl.data.translation import cli as tm_cli
from qilin_med_vl.data.translation.config import BACKENDS
from qilin_med_vl.llava_format import STAGES


def _add_build(commands) -> None:
    parser = commands.add_parser(
        "build",
        help="build a ChiMed-VL-style dataset from PMC-OA / PMC-CaseReport / PMC-VQA",
        description=(
            "Read the English sources named in the YAML config, drop what fails the filters (each drop "
            "counted with its reason in manifest.json), concatenate multi-image samples, translate to "
            "Chinese, wrap in the paper's prompt templates and write LLaVA conversation JSONL shards plus "
            "an images/ folder. Re-running the same command over the same --out resumes. "
            "Layout and formats: docs/data.md."
        ),
    )
    parser.add_argument(
        "--config", type=Path, required=True, help="YAML build config, e.g. configs/data/chimed_vl.yaml"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override config keys, e.g. seed=3 split.test=0.02 translator.model=gpt-4o-mini",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the config's 'out')")
    parser.add_argument(
        "--seed", type=int, default=None, help="template-draw seed (default: the config's 'seed')"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes for image work: decode, concatenate, write (default 1)",
    )
    parser.add_argument(
        "--shard",
        default="0/1",
        help="build only shard i of N, the rows whose index is i mod N (default 0/1)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="read at most this many rows per source (trials)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="rows per translation batch (default: config)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group("translation (override the config's 'translator' section)")
    group.add_argument(
        "--translator",
        choices=BACKENDS,
        default=None,
        help="'none' keeps the English text (offline); 'memory': only what the translation memory holds "
        "(offline; a text it lacks is dropped); 'openai': any OpenAI-compatible endpoint",
    )
    group.add_argument("--base-url", default=None, help="endpoint, e.g. https://api.openai.com/v1")
    group.add_argument("--model", default=None, help="chat model name at the endpoint")
    group.add_argument(
        "--api-key-env", default=None, help="name of the environment variable holding the API key"
    )
    group.add_argument(
        "--translator-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other translator setting (repeatable), VALUE read as YAML",
    )
    parser.set_defaults(handler=_run_build)


def build_overrides(args: argparse.Namespace) -> list[str]:
    """The command line's settings as `key=value` overrides of the config (flags first, then overrides)."""
    flags = {
        "seed": args.seed,
        "batch_size": args.batch_size,
        "translator.backend": args.translator,
        "translator.base_url": args.base_url,
        "translator.model": args.model,
        "translator.api_key_env": args.api_key_env,
    }
    from_flags = [f"{key}={value}" for key, value in flags.items() if value is not None]
    return [*from_flags, *(f"translator.{option}" for option in args.translator_option), *args.overrides]


def _run_build(args: argparse.Namespace) -> int:
    from qilin_med_vl.data.build import build, parse_shard
    from qilin_med_vl.data.build_config import load_build_config
    from qilin_med_vl.errors import QilinError

    config = load_build_config(args.config, build_overrides(args))
    out = args.out or config.out
    if out is None:
        raise QilinError(f"{args.config}: no output folder; pass --out DIR or set 'out' in the config")
    manifest = build(
        config,
        out,
        parse_shard(args.shard),
        workers=args.workers,
        limit=args.limit,
        progress=not args.no_progress,
    )
    totals = manifest["totals"]
    print(f"{out}: read {totals['read']}, kept {totals['kept']}, dropped {sum(totals['dropped'].values())}")
    for reason, count in totals["dropped"].items():
        print(f"  {reason}: {count}")
    return 0


def _add_link(commands) -> None:
    parser = commands.add_parser(
        "link-images",
        help="attach local images to the released ChiMed-VL files (which ship without images)",
        description=(
            "Resolve the 'image' of every record of ChiMed-VL-Alignment.jsonl, ChiMed-VL-Instruction.json "
            "or ChiMed-VL-Chat.json against a folder of PMC-OA / PMC-VQA images, by file name (searched "
            "recursively). Writes OUT/<file stem>.jsonl with the records whose images were all found, "
            "OUT/images/, OUT/missing.jsonl (records left out, with the names not found) and "
            "OUT/link_report.json."
        ),
    )
    parser.add_argument("released", type=Path, nargs="+", help="released ChiMed-VL JSON or JSONL files")
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        action="append",
        help="folder of images (repeatable; searched recursively)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--mode",
        choices=("copy", "hardlink", "symlink"),
        default="copy",
        help="how images are placed under OUT/images (default copy)",
    )
    parser.add_argument(
        "--stage",
        choices=STAGES,
        default=None,
        help="the training stage the files feed (default: from the released file names)",
    )
    parser.set_defaults(handler=_run_link)


def _run_link(args: argparse.Namespace) -> int:
    from qilin_med_vl.data.link import link_released

    report = link_released(args.released, args.images, args.out, mode=args.mode, stage=args.stage)
    for name, entry in report["files"].items():
        print(
            f"{name}: {entry['records']} records, {entry['linked']} linked, {entry['missing']} missing images"
        )
    if report["missing_images"]:
        print(
            f"{report['missing_images']} image names not found; see {args.out / 'missing.jsonl'}",
            file=sys.stderr,
        )
    return 0


def _add_stats(commands) -> None:
    parser = commands.add_parser(
        "stats",
        help="the paper's Table 1/2 figures for a built dataset",
        description=(
            "Pairs, total tokens, max and median (Q1, Q3) tokens of contexts/inlines (alignment) and "
            "questions/answers (instruction), per source and in total. Writes stats.json and a "
            "length-histogram PNG. Without --tokenizer, lengths are jieba word counts."
        ),
    )
    parser.add_argument(
        "dataset", type=Path, help="a folder written by `qilin data build` (or JSON/JSONL files in it)"
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="tokenizer folder (with tokenizer.json) or tokenizer.json file",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where stats.json and the PNG go (default: DATASET)"
    )
    parser.set_defaults(handler=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from qilin_med_vl.data.stats import compute_stats, format_tables, write_stats

    stats = compute_stats(args.dataset, args.tokenizer)
    out = args.out or (args.dataset if args.dataset.is_dir() else args.dataset.parent)
    json_path, png_path = write_stats(stats, out)
    print(format_tables(stats))
    print(f"wrote {json_path} and {png_path}")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="data_command", metavar="<data command>")
    _add_build(commands)
    _add_link(commands)
    _add_stats(commands)
    synth_cli.register(commands)
    tm_parser = commands.add_parser("tm", help="translation memory: import/export TSV or JSONL pairs")
    tm_cli.register(tm_parser)
    converse_cli.register(
        commands.add_parser("converse", help="multi-turn conversations about a build's figures")
    )
    review_cli.register(commands.add_parser("review", help="expert review of translations: export, import"))
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)
