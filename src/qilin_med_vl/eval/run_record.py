"""run.json: what a run evaluated, with what, and how, so its numbers can be traced and its folder resumed.

`identity` is the part that decides whether an --out folder may be resumed: the task and its options,
the model (weights hash, or endpoint and model name), the items (a hash of every item as read), the
prompts, the metric version, the answer length and the shard. The rest (command line, date, version,
directories) is recorded for the reader and may differ between a run and its resumption. The optional
LLM judge (`judge`) is not part of the identity: a judge may be added to a finished run, and the runner
refuses a folder holding another judge's verdicts on its own (`judge.check_judge`).

Why the items are hashed rather than the benchmark's files: a benchmark folder also holds thousands of
images and files the task never reads. The hash covers what was asked: every item's id, question,
reference, choices, groups and extra fields, and its image's path (relative to --data) and size.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from qilin_med_vl import __version__
from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval.items import EvalItem, TaskOptions
from qilin_med_vl.eval.predictions import relative_image_path
from qilin_med_vl.eval.shard import Shard

RUN_FILE = "run.json"
RUN_FORMAT = 1  # bumped when run.json's layout changes


def items_sha256(items: Sequence[EvalItem], image_root: Path) -> str:
    digest = hashlib.sha256()
    for item in items:
        image = None
        if item.image is not None:
            path = Path(item.image)
            size = path.stat().st_size if path.is_file() else None
            image = [relative_image_path(path, image_root), size]
        fields = asdict(item) | {"image": image}
        digest.update(json.dumps(fields, ensure_ascii=False, sort_keys=True, default=str).encode() + b"\n")
    return digest.hexdigest()


def prompts_sha256(prompts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for prompt in prompts:
        digest.update(prompt.encode() + b"\0")
    return digest.hexdigest()


def build_run_record(
    *,
    task_name: str,
    options: TaskOptions,
    model: dict,
    data_dir: Path,
    item_count: int,
    items_digest: str,
    prompt: dict,
    metric_version: dict,
    max_new_tokens: int,
    shard: Shard | None,
    limit: int | None,
    argv: Sequence[str] | None = None,
    blank_images: bool = False,
    judge: dict | None = None,
) -> dict:
    model_key = {key: value for key, value in model.items() if key != "directory"}  # folders may move
    identity = {
        "task": task_name,
        # where images are unpacked changes no answer, so a run may be resumed with another cache folder
        "options": {key: value for key, value in asdict(options).items() if key != "image_cache"},
        "model": model_key,
        "items_sha256": items_digest,
        "prompts_sha256": prompt["sha256"],
        "metric_version": metric_version,
        "max_new_tokens": max_new_tokens,
        "shard": None if shard is None else shard._asdict(),
        "blank_images": blank_images,
    }
    return {
        "format": RUN_FORMAT,
        "identity": identity,
        "task": task_name,
        "model": model,
        "data": {"path": str(data_dir.resolve()), "items": item_count, "items_sha256": items_digest},
        "prompt": prompt,
        "metric_version": metric_version,
        "judge": judge,
        "limit": limit,
        "command": shlex.join(["qilin", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "qilin_version": __version__,
    }


def read_run_record(directory: Path) -> dict | None:
    path = directory / RUN_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise QilinError(f"{path}: not valid JSON ({error}); it is not a qilin eval run folder") from error
    if not isinstance(record, dict) or "identity" not in record:
        raise QilinError(f"{path}: not written by `qilin eval` (no identity); choose another --out")
    return record


def write_run_record(directory: Path, record: dict) -> None:
    path = directory / RUN_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)  # a kill never leaves a half-written run.json


def identity_differences(old: dict, new: dict) -> list[str]:
    """Human-readable lines naming each identity field that differs between two runs."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            lines.append(
                f"{key}: {json.dumps(old.get(key), ensure_ascii=False)} here, "
                f"{json.dumps(new.get(key), ensure_ascii=False)} now"
            )
    return lines
