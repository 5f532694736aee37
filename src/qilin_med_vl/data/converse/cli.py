"""`qilin data converse BUILD`: add grounded multi-turn Chinese conversations to a built folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from qilin_med_vl.config import apply_overrides, from_mapping
from qilin_med_vl.data.converse.config import CONVERSATION_MEMORY_FILE, ConverseConfig


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Ask any OpenAI-compatible chat endpoint for 2-6 round Chinese conversations about each figure of a "
        "build (case reports: context, inline text, question/answer; PMC-OA: captions), given only the "
        "figure's text. Answers whose numbers, units, sides or glossary terms are not in that text are "
        "dropped with their reason. Writes BUILD/conversation-*.jsonl, lists it among the build's "
        "instruction files in manifest.json (stage 2 trains on it as it is), and keeps every paid answer "
        f"in BUILD/{CONVERSATION_MEMORY_FILE}, so rerunning resumes without repeating a request. "
        "Guide: docs/conversations_and_review.md."
    )
    parser.add_argument("build", type=Path, help="a folder written by `qilin data build`")
    parser.add_argument("--base-url", default=None, help="endpoint, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default=None, help=f"chat model name (default {ConverseConfig.model})")
    parser.add_argument(
        "--api-key-env",
        default=None,
        help=f"variable holding the API key (default {ConverseConfig.api_key_env})",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting (repeatable), e.g. concurrency=16 min_rounds=3 input_price_per_million=0.15",
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many figures (trials)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run)


def converse_config(args: argparse.Namespace) -> ConverseConfig:
    flags = {"base_url": args.base_url, "model": args.model, "api_key_env": args.api_key_env}
    settings = apply_overrides({key: value for key, value in flags.items() if value is not None}, args.option)
    return from_mapping(ConverseConfig, settings, "qilin data converse")


def _run(args: argparse.Namespace) -> int:
    from qilin_med_vl.data.converse.run import converse

    result = converse(args.build, converse_config(args), limit=args.limit, progress=not args.no_progress)
    summary = result.summary
    usage = summary["usage"]
    print(
        f"{args.build}: {summary['figures']} figures, {summary['kept']} conversations kept, "
        f"{sum(summary['dropped'].values())} dropped; {result.this_run.answers} new answers "
        f"({result.this_run.requests} requests), {result.memory_hits} from the memory"
    )
    for reason, count in {**summary["dropped"], **summary["rounds_dropped"]}.items():
        print(f"  {reason}: {count}")
    print(
        f"  tokens: {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion, "
        f"cost {usage['cost']:g}"
    )
    return 0
