"""One evaluation run: ask the backend every selected item not yet answered, score and record each at once.

Selection: the task's items in its order, the first `limit` of them, then (with a shard i/N) those whose
index % N == i. The --out folder holds run.json (checked against this run's identity before anything
is asked), predictions.jsonl (appended and flushed per answer) and, at the end, metrics.json,
report.md and scores.png over the selected items. Rerunning the same command resumes: items already in
predictions.jsonl are never asked again, and a finished run only rewrites its metrics and report.
With a judge (see `judge`), the open answers without a verdict are then judged, each verdict appended
as it arrives; run.json records the judge, and a folder holding another judge's verdicts is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.errors import DataError, QilinError
from qilin_med_vl.eval.backend import Backend, Question
from qilin_med_vl.eval.items import EvalItem, Task, TaskOptions
from qilin_med_vl.eval.judge import Judge, check_judge, needs_verdict
from qilin_med_vl.eval.predictions import (
    PREDICTIONS_FILE,
    PredictionWriter,
    latest_per_id,
    prediction_record,
    read_predictions,
    write_predictions,
)
from qilin_med_vl.eval.report import write_report
from qilin_med_vl.eval.run_record import (
    RUN_FILE,
    build_run_record,
    identity_differences,
    items_sha256,
    prompts_sha256,
    read_run_record,
    write_run_record,
)
from qilin_med_vl.eval.shard import Shard
from qilin_med_vl.eval.summary import build_metrics, write_metrics
from qilin_med_vl.eval.versions import metric_version, prompt_record


@dataclass(frozen=True)
class RunSettings:
    data_dir: Path  # --data: the benchmark's folder, or the one file a task reads
    out_dir: Path
    options: TaskOptions
    max_new_tokens: int
    batch_size: int
    shard: Shard | None = None
    limit: int | None = None
    argv: Sequence[str] | None = None  # recorded as the command line (default: sys.argv)
    progress: bool = True
    blank_images: bool = False  # the blind ablation: every picture replaced by a uniform one

    @property
    def image_root(self) -> Path:
        """What image paths are recorded relative to: the data folder (or the data file's folder)."""
        return self.data_dir if self.data_dir.is_dir() else self.data_dir.parent


def select(items: Sequence, limit: int | None, shard: Shard | None) -> list[int]:
    """Indices of the items this run answers: the first `limit`, then those of the shard."""
    indices = range(len(items) if limit is None else min(limit, len(items)))
    if shard is None:
        return list(indices)
    return [index for index in indices if shard.holds(index)]


def run_evaluation(task: Task, backend: Backend, settings: RunSettings, judge: Judge | None = None) -> dict:
    """Run (or resume) the evaluation into `settings.out_dir`, then let `judge` (if any) judge the open
    answers; returns metrics.json's content."""
    items = _read_items(task, settings.data_dir)
    prompts = [task.prompt(item) for item in items]
    chosen = select(items, settings.limit, settings.shard)
    if judge is not None:
        judge.check_languages([items[index] for index in chosen])
    record = build_run_record(
        task_name=task.name,
        options=settings.options,
        model=backend.identity(),
        data_dir=settings.data_dir,
        item_count=len(items),
        items_digest=items_sha256(items, settings.image_root),
        prompt=prompt_record(task, items, prompts, prompts_sha256(prompts)),
        metric_version=metric_version(task),
        max_new_tokens=settings.max_new_tokens,
        shard=settings.shard,
        limit=settings.limit,
        argv=settings.argv,
        blank_images=settings.blank_images,
        judge=None if judge is None else judge.record(),
    )
    out = settings.out_dir
    _claim_folder(out, record)

    done = {entry["id"] for entry in read_predictions(out / PREDICTIONS_FILE)}
    todo = [index for index in chosen if items[index].id not in done]
    _check_images(items, todo)
    if todo:
        _answer(task, backend, items, prompts, todo, settings, already=len(chosen) - len(todo))

    chosen_ids = {items[index].id for index in chosen}
    judged = 0 if judge is None else _judge_open_answers(judge, items, chosen_ids, settings)
    everything = latest_per_id(read_predictions(out / PREDICTIONS_FILE))
    records = [entry for entry in everything if entry["id"] in chosen_ids]
    if (todo or judged) and len(records) == len(chosen):
        # answers and verdicts came in any order, a verdict as a second line: now one line per item, in order
        write_predictions(out / PREDICTIONS_FILE, everything)
    metrics = build_metrics(record, records, len(chosen))
    write_metrics(out, metrics)
    write_report(out, metrics)
    return metrics


def _judge_open_answers(
    judge: Judge, items: Sequence[EvalItem], chosen_ids: set[str], settings: RunSettings
) -> int:
    """Judge every chosen open answer without a verdict; returns how many were judged."""
    path = settings.out_dir / PREDICTIONS_FILE
    records = latest_per_id(read_predictions(path))
    pending = [entry for entry in records if entry["id"] in chosen_ids and needs_verdict(entry)]
    if pending:
        with PredictionWriter(path) as writer:
            judge.judge(
                {item.id: item for item in items},
                pending,
                writer.write,
                settings.batch_size,
                settings.progress,
            )
    return len(pending)


def _read_items(task: Task, data_dir: Path) -> list[EvalItem]:
    items = list(task.items())
    if not items:
        raise DataError(f"--data {data_dir}: the task {task.name} found no items there; check the folder")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"--data {data_dir}: item id {item.id!r} occurs twice; ids must be unique")
        seen.add(item.id)
    return items


def _claim_folder(out: Path, record: dict) -> None:
    """Check that `out` is new or holds this very run, then write run.json there."""
    if out.exists() and not out.is_dir():
        raise QilinError(f"--out {out}: is a file; give a folder for the run's files")
    previous = read_run_record(out) if out.is_dir() else None
    if previous is None and (out / PREDICTIONS_FILE).exists():
        raise QilinError(f"--out {out}: holds {PREDICTIONS_FILE} but no {RUN_FILE}; choose another --out")
    if previous is not None:
        differences = identity_differences(previous["identity"], record["identity"])
        if differences:
            raise QilinError(
                f"--out {out} holds another run ({previous.get('command')}); it differs in\n  "
                + "\n  ".join(differences)
                + "\nchoose another --out, or rerun that folder's own command to resume it"
            )
        record["judge"] = check_judge(str(out), previous.get("judge"), record["judge"])
        # "date" stays when the run began; each resumption adds its own date
        record["resumed"] = [*previous.get("resumed", []), record["date"]]
        record["date"] = previous["date"]
    out.mkdir(parents=True, exist_ok=True)
    write_run_record(out, record)


def _check_images(items: Sequence[EvalItem], todo: Sequence[int]) -> None:
    for index in todo:
        image = items[index].image
        if image is not None and not Path(image).exists():
            raise DataError(
                f"item {items[index].id!r}: its image {image} does not exist; restore the benchmark's "
                "image folder under --data"
            )


def _answer(
    task: Task,
    backend: Backend,
    items: Sequence[EvalItem],
    prompts: Sequence[str],
    todo: Sequence[int],
    settings: RunSettings,
    already: int,
) -> None:
    from tqdm import tqdm

    bar = tqdm(
        total=already + len(todo),
        initial=already,
        desc=f"eval {task.name}",
        unit="item",
        disable=None if settings.progress else True,  # None: only on a terminal
    )
    try:
        with PredictionWriter(settings.out_dir / PREDICTIONS_FILE) as writer:
            for start in range(0, len(todo), settings.batch_size):
                batch = todo[start : start + settings.batch_size]

                def record_answer(position: int, answer: str, refusal: str | None, batch=batch) -> None:
                    index = batch[position]
                    item = items[index]
                    scored = task.score(item, answer)
                    writer.write(prediction_record(index, item, answer, scored, settings.image_root, refusal))
                    bar.update(1)

                backend.answer(
                    [Question(prompts[index], items[index].image, settings.blank_images) for index in batch],
                    record_answer,
                )
    finally:
        bar.close()
        backend.close()
