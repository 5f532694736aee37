"""`qilin eval merge`: join the folders of one run split with --shard i/N into the unsharded run's folder.

The shards must be the same run (identical identity apart from the shard, same --limit and LLM judge),
together cover every shard index 0..N-1 once, and each be finished. The result is what the unsharded command would
have written: predictions.jsonl in item order, run.json, metrics.json and report.md.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval.predictions import PREDICTIONS_FILE, read_predictions, write_predictions
from qilin_med_vl.eval.report import write_report
from qilin_med_vl.eval.run_record import RUN_FILE, identity_differences, read_run_record, write_run_record
from qilin_med_vl.eval.runner import select
from qilin_med_vl.eval.shard import Shard
from qilin_med_vl.eval.summary import build_metrics, write_metrics


def merge_shards(folders: Sequence[Path], out: Path, argv: Sequence[str] | None = None) -> dict:
    """Merge shard folders into `out`; returns the merged metrics.json content."""
    runs = [_shard_run(folder) for folder in folders]
    first_folder, first = runs[0]
    count = first["identity"]["shard"]["count"]
    for folder, run in runs[1:]:
        unsharded = {**run["identity"], "shard": None}
        differences = identity_differences({**first["identity"], "shard": None}, unsharded)
        if differences:
            raise QilinError(
                f"{folder} is not a shard of the same run as {first_folder}; it differs in\n  "
                + "\n  ".join(differences)
            )
        if run["identity"]["shard"]["count"] != count:
            raise QilinError(
                f"{folder} is shard {run['identity']['shard']['index']} of {run['identity']['shard']['count']}, "
                f"{first_folder} one of {count}; merge the shards of one split"
            )
        if run.get("judge") != first.get("judge"):
            raise QilinError(
                f"{folder} and {first_folder} were judged by different LLM judges (run.json's judge); "
                "their verdicts would mix. Rerun the shards with the same --judge-* options"
            )
        if run["limit"] != first["limit"]:
            raise QilinError(
                f"{folder} ran with --limit {run['limit']}, {first_folder} with {first['limit']}"
            )
    indices = sorted(run["identity"]["shard"]["index"] for _, run in runs)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        repeated = sorted({index for index in indices if indices.count(index) > 1})
        raise QilinError(
            f"the folders must hold shards 0..{count - 1} of {count} once each; "
            f"missing {missing or 'none'}, given twice {repeated or 'none'}"
        )

    records: dict[str, dict] = {}
    for folder, run in runs:
        shard = run["identity"]["shard"]
        expected = select(range(run["data"]["items"]), run["limit"], Shard(**shard))
        # the last line of an index wins: a judge verdict is appended as the item's record again
        answered = {entry["index"]: entry for entry in read_predictions(folder / PREDICTIONS_FILE)}
        unfinished = [index for index in expected if index not in answered]
        if unfinished:
            raise QilinError(
                f"{folder}: shard {shard['index']}/{shard['count']} has {len(unfinished)} of "
                f"{len(expected)} items unanswered; rerun its command ({run.get('command')}) to finish it"
            )
        for index in expected:
            records[answered[index]["id"]] = answered[index]
    ordered = sorted(records.values(), key=lambda entry: entry["index"])

    merged = {
        **first,
        "identity": {**first["identity"], "shard": None},
        "command": shlex.join(["qilin", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "merged_from": [
            {"folder": str(folder), "command": run.get("command"), "date": run.get("date")}
            for folder, run in runs
        ],
    }
    merged.pop("resumed", None)
    _check_target(out, merged)
    out.mkdir(parents=True, exist_ok=True)
    write_run_record(out, merged)
    write_predictions(out / PREDICTIONS_FILE, ordered)
    metrics = build_metrics(merged, ordered, len(ordered))
    write_metrics(out, metrics)
    write_report(out, metrics)
    return metrics


def _shard_run(folder: Path) -> tuple[Path, dict]:
    if not folder.is_dir():
        raise QilinError(f"{folder}: no such folder")
    run = read_run_record(folder)
    if run is None:
        raise QilinError(f"{folder}: no {RUN_FILE}; give the --out folders of `qilin eval --shard i/N` runs")
    if run["identity"].get("shard") is None:
        raise QilinError(f"{folder}: this run was not sharded (no --shard); there is nothing to merge")
    return folder, run


def _check_target(out: Path, merged: dict) -> None:
    previous = read_run_record(out) if out.is_dir() else None
    if previous is not None and identity_differences(previous["identity"], merged["identity"]):
        raise QilinError(f"--out {out} holds another run ({previous.get('command')}); choose another --out")
    if previous is None and (out / PREDICTIONS_FILE).exists():
        raise QilinError(f"--out {out}: holds {PREDICTIONS_FILE} but no {RUN_FILE}; choose another --out")
