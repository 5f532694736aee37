"""CLI registration for `qilin eval`: run a benchmark, merge shard folders, compare runs.

The run's options sit on `qilin eval` itself; `merge` and `compare` are sub-actions. Libraries (torch,
httpx, numpy, matplotlib) are imported inside the handlers, so `qilin --help` stays fast.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval.backend import DEFAULT_BATCH_SIZE, DEFAULT_EVAL_MAX_NEW_TOKENS, ENDPOINT_BATCH_PER_SLOT
from qilin_med_vl.eval.endpoint_backend import (
    DEFAULT_BACKOFF_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
)
from qilin_med_vl.eval.items import METRIC_STYLES
from qilin_med_vl.eval.shard import Shard

TASK_NAMES_HELP = "pmc-vqa, slake, vqa-rad, pathvqa, omnimedvqa, chimed-vl"
EXAMPLES = """\
examples:
  qilin eval --task slake --data data/slake --model checkpoints/qilin --out runs/slake-qilin
  qilin eval --task vqa-rad --data data/vqa-rad --endpoint http://localhost:8000/v1 \\
      --model qilin-med-vl --out runs/vqarad-vllm
  qilin eval --task pmc-vqa --data data/pmc-vqa --endpoint https://api.openai.com/v1 \\
      --model gpt-4o --api-key-env OPENAI_API_KEY --out runs/pmcvqa-gpt4o
  qilin eval --task slake ... --judge-endpoint http://localhost:8001/v1 --judge-model qwen2.5-72b
  qilin eval --task slake ... --shard 0/4 --out runs/part0     (and 1/4, 2/4, 3/4 elsewhere)
  qilin eval merge runs/part0 runs/part1 runs/part2 runs/part3 --out runs/slake-qilin
  qilin eval compare runs/slake-qilin runs/slake-gpt4o --out runs/slake-compare.md

Rerunning a command into the same --out resumes it: answered items are never asked again.
--out writes predictions.jsonl (per item, as it goes), run.json, metrics.json, report.md, scores.png.
See docs/evaluation.md."""


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Measure a model on a medical VQA benchmark.\n"
        "  qilin eval --task ... --data ... --model ... --out ...   run (or resume) one evaluation\n"
        "  qilin eval merge SHARD_DIR... --out DIR                   join the folders of a sharded run\n"
        "  qilin eval compare RUN_DIR... [--out FILE]                runs side by side, paired test"
    )
    parser.epilog = EXAMPLES
    run_actions: list[argparse.Action] = []
    add = functools.partial(_add_recorded, run_actions)
    task = parser.add_argument_group("what to evaluate")
    add(task, "--task", help=f"benchmark name: {TASK_NAMES_HELP}")
    add(
        task,
        "--task-factory",
        metavar="MODULE:FUNCTION",
        help="your own task: FUNCTION(data_dir, TaskOptions)",
    )
    add(task, "--data", type=Path, metavar="DIR", help="the benchmark's folder (its public files)")
    add(task, "--mode", help="question form, for tasks that have two (pmc-vqa: choice | open)")
    add(task, "--lang", default="all", choices=("zh", "en", "all"), help="languages (slake)")
    add(
        task,
        "--metric-style",
        default="qilin",
        choices=METRIC_STYLES,
        help="our scoring or LLaVA-Med's formulas",
    )
    add(
        task,
        "--image-cache",
        type=Path,
        metavar="DIR",
        help="where tasks unpack images their files embed (default: beside the data)",
    )
    add(task, "--limit", type=_positive, metavar="N", help="only the first N items")
    add(
        task,
        "--blank-images",
        action="store_true",
        help="the blind ablation: every picture replaced by a uniform grey one of the same size, so the "
        "scores say what the model answers from the question alone",
    )
    add(task, "--shard", type=_shard, metavar="I/N", help="only items whose index %% N == I")

    model = parser.add_argument_group("the model")
    add(
        model,
        "--model",
        metavar="DIR|NAME",
        help="checkpoint folder; with --endpoint, the model name to ask for",
    )
    add(model, "--endpoint", metavar="URL", help="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    add(
        model,
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the endpoint's API key (none: no key)",
    )
    add(
        model,
        "--batch-size",
        type=_positive,
        metavar="N",
        help=f"items per batch (default: {DEFAULT_BATCH_SIZE} for a checkpoint, "
        f"{ENDPOINT_BATCH_PER_SLOT} x --concurrency for an endpoint)",
    )
    add(
        model,
        "--max-new-tokens",
        type=_positive,
        metavar="N",
        default=DEFAULT_EVAL_MAX_NEW_TOKENS,
        help="answer length limit (default: %(default)s)",
    )
    add(
        model,
        "--device",
        metavar="DEVICE",
        help="checkpoint: torch device, e.g. cuda:1 (default: cuda if available, else cpu)",
    )
    add(model, "--dtype", default="auto", help="checkpoint: weight dtype (default: %(default)s)")
    add(
        model,
        "--concurrency",
        type=_positive,
        metavar="N",
        default=DEFAULT_CONCURRENCY,
        help="endpoint: requests in flight (default: %(default)s)",
    )
    add(
        model,
        "--max-retries",
        type=int,
        metavar="N",
        default=DEFAULT_MAX_RETRIES,
        help="endpoint: retries per item (default: %(default)s)",
    )
    add(
        model,
        "--retry-backoff",
        type=float,
        default=DEFAULT_BACKOFF_S,
        metavar="SECONDS",
        help="endpoint: wait before the first retry, doubled each time (default: %(default)s)",
    )
    add(
        model,
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_TIMEOUT_S,
        help="endpoint: seconds per request (default: %(default)s)",
    )
    judge = parser.add_argument_group(
        "the LLM judge (optional)",
        "every open answer is also judged by a language model, reported beside the rule-based score;\n"
        "--concurrency, --max-retries, --retry-backoff and --timeout apply to it too",
    )
    add(judge, "--judge-endpoint", metavar="URL", help="the judge's OpenAI-compatible base URL")
    add(judge, "--judge-model", metavar="NAME", help="the judge's model name")
    add(
        judge,
        "--judge-api-key-env",
        metavar="VAR",
        help="environment variable holding the judge endpoint's API key (none: no key)",
    )
    add(parser, "--out", type=Path, metavar="DIR", help="the run's folder (resumed if it holds this run)")
    parser.set_defaults(
        handler=run_handler, command_words=functools.partial(_command_words, ["eval"], run_actions)
    )

    actions = parser.add_subparsers(dest="eval_action", title="other actions", metavar="{merge,compare}")
    merge = actions.add_parser("merge", help="join the folders of a sharded run", description=_merge_help())
    merge_actions: list[argparse.Action] = []
    merge_add = functools.partial(_add_recorded, merge_actions)
    merge_add(merge, "folders", nargs="+", type=Path, metavar="SHARD_DIR")
    merge_add(merge, "--out", type=Path, required=True, metavar="DIR", help="the merged run's folder")
    merge.set_defaults(
        handler=merge_handler,
        command_words=functools.partial(_command_words, ["eval", "merge"], merge_actions),
    )
    compare = actions.add_parser(
        "compare", help="runs side by side, with a paired test", description=_compare_help()
    )
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="first one: the baseline")
    compare.add_argument("--out", type=Path, metavar="FILE", help="also write the Markdown table here")
    compare.set_defaults(handler=compare_handler)


def _add_recorded(recorded: list[argparse.Action], container, *names, **options) -> argparse.Action:
    """Add an argument and keep its action, so the command line can be rebuilt from parsed options."""
    action = container.add_argument(*names, **options)
    recorded.append(action)
    return action


def _command_words(prefix: list[str], actions: list[argparse.Action], args: argparse.Namespace) -> list[str]:
    """The command line recorded in run.json, rebuilt from the parsed options (whatever called `main`):
    positionals, then every option whose value differs from its default."""
    words = list(prefix)
    options = []
    for action in actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            words += [str(part) for part in (value if isinstance(value, list) else [value])]
        elif value is not None and value != action.default:
            flag_only = action.nargs == 0  # store_true: the flag is the value
            options += [action.option_strings[0]] if flag_only else [action.option_strings[0], str(value)]
    return words + options


def _merge_help() -> str:
    return (
        "Join the --out folders of `qilin eval ... --shard I/N` runs (all N shards, each finished) into the "
        "folder the unsharded run would have written."
    )


def _compare_help() -> str:
    return (
        "Print a Markdown table of the runs' scores per group; for each run after the first, a paired "
        "sign-flip permutation test of its per-item differences from the first run on their shared items."
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _shard(text: str) -> Shard:
    index, separator, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = None
    if not separator or shard is None or shard[1] < 1 or not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(f"write it as I/N with 0 <= I < N, e.g. 0/4; got {text!r}")
    return shard


def run_handler(args: argparse.Namespace) -> int:
    from qilin_med_vl.eval.items import TaskOptions
    from qilin_med_vl.eval.runner import RunSettings, run_evaluation
    from qilin_med_vl.eval.task_lookup import make_task

    for flag, value in (("--data", args.data), ("--model", args.model), ("--out", args.out)):
        if value is None:
            raise QilinError(f"{flag} is required to run an evaluation (see `qilin eval --help`)")
    options = TaskOptions(
        mode=args.mode, lang=args.lang, metric_style=args.metric_style, image_cache=args.image_cache
    )
    judge = _judge(args)  # checked before the task reads anything
    task = make_task(args.task, args.task_factory, args.data, options)
    backend = _backend(args)
    settings = RunSettings(
        data_dir=args.data,
        out_dir=args.out,
        options=options,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size or _default_batch_size(args),
        shard=args.shard,
        limit=args.limit,
        argv=args.command_words(args),
        blank_images=args.blank_images,
    )
    metrics = run_evaluation(task, backend, settings, judge)
    _print_result(metrics, args.out)
    return 0


def _judge(args: argparse.Namespace):
    if args.judge_endpoint is None and args.judge_model is None:
        if args.judge_api_key_env is not None:
            raise QilinError("--judge-api-key-env needs --judge-endpoint URL and --judge-model NAME")
        return None
    if args.judge_endpoint is None or args.judge_model is None:
        given, missing = (
            ("--judge-model", "--judge-endpoint URL")
            if args.judge_endpoint is None
            else ("--judge-endpoint", "--judge-model NAME")
        )
        raise QilinError(
            f"{given} needs {missing} too: the judge is a model at an OpenAI-compatible endpoint"
        )
    if not args.judge_endpoint.startswith(("http://", "https://")):
        raise QilinError(
            f"--judge-endpoint {args.judge_endpoint}: give an http:// or https:// base URL, "
            "e.g. http://localhost:8001/v1"
        )
    from qilin_med_vl.eval.judge import Judge, JudgeSettings

    return Judge(
        JudgeSettings(
            endpoint=args.judge_endpoint,
            model=args.judge_model,
            api_key_env=args.judge_api_key_env,
            concurrency=args.concurrency,
            max_retries=args.max_retries,
            timeout_s=args.timeout,
            backoff_s=args.retry_backoff,
        )
    )


def _default_batch_size(args: argparse.Namespace) -> int:
    return DEFAULT_BATCH_SIZE if args.endpoint is None else ENDPOINT_BATCH_PER_SLOT * args.concurrency


def _backend(args: argparse.Namespace):
    if args.endpoint is not None:
        from qilin_med_vl.eval.endpoint_backend import EndpointBackend, EndpointSettings

        return EndpointBackend(
            EndpointSettings(
                endpoint=args.endpoint,
                model=args.model,
                max_new_tokens=args.max_new_tokens,
                api_key_env=args.api_key_env,
                concurrency=args.concurrency,
                max_retries=args.max_retries,
                timeout_s=args.timeout,
                backoff_s=args.retry_backoff,
            )
        )
    from qilin_med_vl.eval.engine_backend import EngineBackend

    return EngineBackend(Path(args.model), args.max_new_tokens, device=args.device, dtype=args.dtype)


def _print_result(metrics: dict, out: Path) -> None:
    from qilin_med_vl.eval.report import REPORT_FILE, format_group

    overall = metrics["overall"]
    score = format_group(overall) if overall is not None else "no items"
    print(
        f"{metrics['task']}: {score} over {metrics['answered']} of {metrics['items']} items -> {out / REPORT_FILE}"
    )


def merge_handler(args: argparse.Namespace) -> int:
    from qilin_med_vl.eval.merge import merge_shards

    metrics = merge_shards(args.folders, args.out, argv=args.command_words(args))
    _print_result(metrics, args.out)
    return 0


def compare_handler(args: argparse.Namespace) -> int:
    from qilin_med_vl.eval.compare import load_run, render_comparison

    text = render_comparison([load_run(folder) for folder in args.runs])
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0
