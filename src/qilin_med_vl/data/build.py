"""The ChiMed-VL build: stream source rows -> candidates -> filters -> images -> translation -> records.

Rows are read one source after another (pmc_oa, pmc_case_report, pmc_vqa) and handled `batch_size`
rows at a time: text filters, then image work (in `workers` processes), then one `submit_batch` of the
batch's unique texts to the translator, then composition and writing, in row order. The batches are
pipelined: while one batch waits for its translations and is written, the next batch's translation
requests are already in flight and the image work of the one after is already with the workers
(`LOOKAHEAD`), so neither the workers nor the translation service wait for the main process. Memory
stays flat in the number of rows: nothing but those few batches and a bounded cache of image results
is held. Every candidate ends as one line of a stage file (kept) or of the dropped log (dropped), and
is counted in the manifest, so per source and stage `kept + sum(dropped.values()) == read`.

Held-out split: with `split: {test: F}` a fraction F of PMC articles (by article id, see data/split.py)
goes to the `test` files instead of the stage files, so no article is on both sides; those records
count as kept (their number is `test` in the manifest), so `kept + dropped == read` still holds.

Sharding: `--shard i/N` keeps the rows whose index (position in its source) is i modulo N; template
draws depend only on (seed, record id), so the N shards together equal the unsharded build.

Output directory (shard i of N, numbered from 0, written as 5 digits):

    OUT/
      alignment-0000i-of-0000N.jsonl     stage 1 records (LLaVA conversation JSONL, one per line)
      instruction-0000i-of-0000N.jsonl   stage 2 records
      test-0000i-of-0000N.jsonl          held-out records of both stages (with `split: {test: F}`)
      dropped-0000i-of-0000N.jsonl       {"id", "source", "stage", "reason", "detail", "location"}
      images/<source>/<name>             single images, copied byte for byte
      images/<source>/composite/<sha1>.jpg   concatenated multi-image samples
      manifest.json                      the files of each split, the image root, counts (unsharded; or
                                         the sum once all N shards are done): read it with
                                         `qilin_med_vl.llava_format.built_files`
      manifest-0000i-of-0000N.json       each shard's counts (sharded builds only)

Each record: {"id", "image" (path relative to images/), "conversations": [{"from": "human",
"value": "...<image>..."}, {"from": "gpt", "value": "..."}], "meta": {"source", "stage", "ref",
"source_images", "template", "spans"}}. Stage files are written under a `.partial` name and renamed
when the shard completes; re-running the same command over the same folder resumes (images already
written are kept, the translation cache answers what was already paid for). The same config and seed
give byte-identical files, whatever the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from qilin_med_vl.data import records
from qilin_med_vl.data.build_config import BuildConfig
from qilin_med_vl.data.composite import ImageOutcome, ImageTask, prepare_image_tasks
from qilin_med_vl.data.filters import check_texts
from qilin_med_vl.data.records import SOURCE_STAGES, Candidate, Decision, SourceRow
from qilin_med_vl.data.sources import HEADER_CHECKS, READERS, expand_globs
from qilin_med_vl.data.split import is_held_out
from qilin_med_vl.data.templates import compose, load_prompt_pools, needed_fields
from qilin_med_vl.data.translation import Translation, Translator, make_translator
from qilin_med_vl.errors import DataError, QilinError
from qilin_med_vl.llava_format import (
    IMAGES_DIR,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    SPLITS,
    STAGES,
    TEST,
    shard_file_name,
)

IMAGE_CACHE_ENTRIES = 4096  # recent image results kept: PMC-VQA asks several questions per figure
CHUNKS_PER_WORKER = 4  # image tasks of a batch are sent to each worker in about this many chunks
# batches whose translations are in flight while one is written; the image work runs one batch further
LOOKAHEAD = 1


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @property
    def suffix(self) -> str:
        return f"{self.index:05d}-of-{self.count:05d}"

    def holds(self, row: SourceRow) -> bool:
        return row.index % self.count == self.index


def parse_shard(text: str) -> Shard:
    """'i/N' (0 <= i < N) -> Shard."""
    try:
        index_text, count_text = text.split("/")
        shard = Shard(int(index_text), int(count_text))
    except ValueError:
        raise QilinError(f"--shard {text!r}: expected i/N, e.g. 0/4 for the first of four machines") from None
    if not 0 <= shard.index < shard.count:
        raise QilinError(f"--shard {text!r}: i must be in 0..N-1")
    return shard


@dataclass
class Counts:
    """Per source and stage: read, kept, dropped by reason."""

    table: dict = field(default_factory=dict)

    def add(self, decision: Decision, held_out: bool = False) -> None:
        entry = self.table.setdefault(decision.candidate.row.source, {}).setdefault(
            decision.candidate.stage, empty_entry()
        )
        entry["read"] += 1
        if decision.kept:
            entry["kept"] += 1
            entry["test"] += held_out
        else:
            entry["dropped"][decision.reason] = entry["dropped"].get(decision.reason, 0) + 1

    @property
    def kept(self) -> int:
        return sum(stage["kept"] for source in self.table.values() for stage in source.values())

    @property
    def dropped(self) -> int:
        return sum(
            sum(stage["dropped"].values()) for source in self.table.values() for stage in source.values()
        )


def empty_entry() -> dict:
    """Counts of one source and stage; `test` is the part of `kept` written to the held-out split."""
    return {"read": 0, "kept": 0, "test": 0, "dropped": {}}


def source_files(config: BuildConfig) -> dict[str, list[Path]]:
    """Each source's record files, globs expanded in sorted order."""
    return {name: expand_globs(name, source.records) for name, source in config.sources.items()}


def check_sources(config: BuildConfig) -> None:
    """Fail before any work when a configured file or folder is absent or is not in its source's format
    (not hours into a build, and before anything is written or paid for)."""
    for name, files in source_files(config).items():
        for path in files:
            HEADER_CHECKS[name](path)
        source = config.sources[name]
        if not source.images.is_dir():
            raise DataError(
                f"sources.{name}.images: {source.images}: no such folder; fix the path in the build config"
            )


def read_rows(config: BuildConfig, limit: int | None = None) -> Iterator[SourceRow]:
    """All rows of all configured sources, in source order; `limit` rows per source at most."""
    for name, files in source_files(config).items():
        yield from islice(READERS[name](files), limit)


def _image_key(row: SourceRow) -> tuple[str, tuple[str, ...]]:
    """What decides a row's image outcome: rows naming the same pictures share it."""
    return row.source, row.images


def _batched(rows: Iterator[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    while batch := list(islice(rows, size)):
        yield batch


class InlineExecutor(Executor):
    """Runs each task in the calling process as it is submitted (`--workers 1`): no pickling, no pool."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)  # raised where the result is read, as a pool's would be
        return future


class ImageWork:
    """The image outcomes of some image keys, computed by one task of the executor."""

    def __init__(self, keys: list[tuple], future: Future) -> None:
        self.keys = keys
        self.future = future
        self._outcomes: dict[tuple, ImageOutcome] | None = None

    def outcomes(self) -> dict[tuple, ImageOutcome]:
        """Waits for the task."""
        if self._outcomes is None:
            self._outcomes = dict(zip(self.keys, self.future.result(), strict=True))
        return self._outcomes

    def outcome(self, key: tuple) -> ImageOutcome:
        return self.outcomes()[key]


@dataclass
class Batch:
    """One batch of rows on its way through the build (see `Builder._pipeline`)."""

    rows: list[SourceRow]
    candidates: list[Candidate]
    decisions: dict[int, Decision]  # by candidate position; the rest are still to decide
    # by image key, for the rows the text filters kept: outcomes known, and work still to read back
    image_outcomes: dict[tuple, ImageOutcome] = field(default_factory=dict)
    images: dict[tuple, ImageWork] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)  # unique texts sent to the translator, in order
    translations: Future[list[Translation]] | None = None

    @property
    def decided(self) -> list[Decision]:
        """One decision per candidate, in row then stage order (once every candidate is decided)."""
        return [self.decisions[position] for position in range(len(self.candidates))]


class ShardFiles:
    """The shard's stage files and dropped log, written under `.partial` names until `complete()`."""

    def __init__(self, stage_paths: dict[str, Path], dropped_path: Path) -> None:
        self.stage_paths = stage_paths
        self.dropped_path = dropped_path
        self.partial = {
            path: path.with_name(path.name + ".partial") for path in [*stage_paths.values(), dropped_path]
        }
        self.handles = {
            path: open(partial, "w", encoding="utf-8", newline="\n") for path, partial in self.partial.items()
        }

    def write(self, decision: Decision, held_out: bool) -> None:
        if decision.kept:
            split = TEST if held_out else decision.candidate.stage
            self.handles[self.stage_paths[split]].write(
                json.dumps(decision.record, ensure_ascii=False) + "\n"
            )
            return
        entry = {
            "id": decision.candidate.record_id,
            "source": decision.candidate.row.source,
            "stage": decision.candidate.stage,
            "reason": decision.reason,
            "detail": decision.detail,
            "location": decision.candidate.row.location,
        }
        self.handles[self.dropped_path].write(json.dumps(entry, ensure_ascii=False) + "\n")

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()

    def complete(self) -> None:
        """Give the closed files their final names (a killed build leaves only `.partial` files)."""
        for final, temporary in self.partial.items():
            os.replace(temporary, final)


class Builder:
    """One shard of one build; `run()` writes the output directory described in the module docstring."""

    def __init__(
        self,
        config: BuildConfig,
        out: Path,
        shard: Shard = Shard(),
        workers: int = 1,
        limit: int | None = None,
        progress: bool = True,
        translator: Translator | None = None,
        executor: Executor | None = None,
    ):
        self.config = config
        self.translator = translator  # None: made from config.translator, and closed at the end
        self.executor = executor  # None: `workers` processes (or this one), shut down at the end
        self.out = out
        self.shard = shard
        self.workers = max(1, workers)
        self.limit = limit
        self.progress = progress
        self.pools = load_prompt_pools()
        self.counts = Counts()
        self.rows_read = dict.fromkeys(config.sources, 0)  # source rows (a CaseReport row feeds two stages)
        self.image_cache: OrderedDict[tuple, ImageOutcome] = OrderedDict()
        # image work submitted and not yet read back: a later batch naming the same pictures shares it,
        # so no two tasks ever prepare (and write) the same picture at once
        self.images_in_flight: dict[tuple, ImageWork] = {}

    # -- per batch -------------------------------------------------------------------------------
    def _fields(self, candidate: Candidate) -> tuple[str, ...]:
        return needed_fields(candidate, self.config.vqa_format, self.config.case_report_alignment_fields)

    def _start(self, rows: list[SourceRow], executor: Executor) -> Batch:
        """Text filters, then the image work of the rows they kept, submitted: nothing is waited for."""
        candidates = [Candidate(row, stage) for row in rows for stage in SOURCE_STAGES[row.source]]
        batch = Batch(rows, candidates, self._filter_texts(candidates))
        undecided = [c.row for position, c in enumerate(candidates) if position not in batch.decisions]
        self._submit_images(batch, undecided, executor)
        return batch

    def _submit_images(self, batch: Batch, rows: list[SourceRow], executor: Executor) -> None:
        """Each row's image outcome: cached, shared with work already in flight, or sent now in chunks."""
        tasks: dict[tuple, ImageTask] = {}
        for row in rows:
            key = _image_key(row)
            if key in batch.image_outcomes or key in batch.images or key in tasks:
                continue
            if key in self.image_cache:
                self.image_cache.move_to_end(key)
                batch.image_outcomes[key] = self.image_cache[key]
            elif key in self.images_in_flight:
                batch.images[key] = self.images_in_flight[key]
            else:
                tasks[key] = ImageTask(
                    source=row.source,
                    names=row.images,
                    image_root=str(self.config.sources[row.source].images),
                    images_out=str(self.out / "images"),
                    settings=self.config.images,
                )
        for keys in self._chunks(list(tasks)):
            work = ImageWork(keys, executor.submit(prepare_image_tasks, [tasks[key] for key in keys]))
            for key in keys:
                batch.images[key] = self.images_in_flight[key] = work

    def _chunks(self, keys: list[tuple]) -> list[list[tuple]]:
        # a few chunks per worker: one task per record spends its time on pickling round trips
        size = len(keys) // (CHUNKS_PER_WORKER * self.workers) if self.workers > 1 else len(keys)
        size = max(1, size)
        return [keys[start : start + size] for start in range(0, len(keys), size)]

    def _submit_translation(self, batch: Batch, translator: Translator) -> None:
        """Waits for the batch's image work, drops what it refuses, and sends the rest's texts."""
        for key, work in batch.images.items():
            batch.image_outcomes[key] = work.outcome(key)
        self._remember_images(list(dict.fromkeys(batch.images.values())))
        for position, candidate in enumerate(batch.candidates):
            if position not in batch.decisions:
                outcome = batch.image_outcomes[_image_key(candidate.row)]
                if outcome.reason is not None:
                    batch.decisions[position] = Decision(
                        candidate, reason=outcome.reason, detail=outcome.detail
                    )
        batch.texts = self._texts(batch)
        if batch.texts:
            batch.translations = translator.submit_batch(batch.texts)

    def _remember_images(self, works: list[ImageWork]) -> None:
        """Move the outcomes of read-back work to the cache (work an earlier batch shared: again, harmlessly)."""
        for work in works:
            for key, outcome in work.outcomes().items():
                if self.images_in_flight.get(key) is work:
                    del self.images_in_flight[key]
                self.image_cache[key] = outcome
                if len(self.image_cache) > IMAGE_CACHE_ENTRIES:
                    self.image_cache.popitem(last=False)

    def _texts(self, batch: Batch) -> list[str]:
        """The unique non-empty texts of the batch's undecided candidates, in order."""
        texts: dict[str, None] = {}
        for position, candidate in enumerate(batch.candidates):
            if position not in batch.decisions:
                for name in self._fields(candidate):
                    if candidate.row.texts.get(name):
                        texts.setdefault(candidate.row.texts[name])
        return list(texts)

    def _finish(self, batch: Batch) -> Batch:
        """Waits for the batch's translations and decides what is left: the batch is then `decided`."""
        translations = batch.translations.result() if batch.translations is not None else []
        translated = dict(zip(batch.texts, translations, strict=True))
        for position, candidate in enumerate(batch.candidates):
            if position not in batch.decisions:
                image = batch.image_outcomes[_image_key(candidate.row)]
                batch.decisions[position] = self._compose(candidate, translated, image)
        return batch

    def _filter_texts(self, candidates: list[Candidate]) -> dict[int, Decision]:
        decisions = {}
        for position, candidate in enumerate(candidates):
            if candidate.row.error is not None:
                decisions[position] = Decision(
                    candidate, reason=records.MALFORMED_RECORD, detail=candidate.row.error
                )
                continue
            verdict = check_texts(candidate, self._fields(candidate), self.config.filters)
            if verdict is not None:
                decisions[position] = Decision(candidate, reason=verdict[0], detail=verdict[1])
        return decisions

    def _compose(self, candidate: Candidate, translated: dict, image: ImageOutcome) -> Decision:
        chinese: dict[str, str] = {}
        for name in self._fields(candidate):
            source_text = candidate.row.texts.get(name, "")
            if not source_text:
                chinese[name] = ""
                continue
            result = translated[source_text]
            if result.text is None:
                reason = result.reason or records.TRANSLATION_FAILED
            elif not result.text.strip():
                reason = records.TRANSLATION_EMPTY
            else:
                chinese[name] = result.text
                continue
            return Decision(
                candidate, reason=reason, detail=f"{name}: no usable translation of {source_text[:80]!r}"
            )
        record = compose(
            candidate,
            chinese,
            image.path,
            self.pools,
            self.config.seed,
            self.config.vqa_format,
            self.config.case_report_alignment_fields,
        )
        if image.layout:
            record["meta"]["layout"] = image.layout
        return Decision(candidate, record=record)

    # -- the whole shard --------------------------------------------------------------------------
    def run(self) -> dict:
        from tqdm import tqdm

        check_sources(self.config)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / IMAGES_DIR).mkdir(exist_ok=True)
        suffix = self.shard.suffix
        splits = SPLITS if self.config.test_fraction > 0 else STAGES
        files = ShardFiles(
            {split: self.out / shard_file_name(split, suffix) for split in splits},
            self.out / f"dropped-{suffix}.jsonl",
        )
        translator = self.translator or make_translator(self.config.translator_config(self.out))
        executor = self.executor or (
            ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            if self.workers > 1
            else InlineExecutor()
        )
        rows = (row for row in read_rows(self.config, self.limit) if self.shard.holds(row))
        bar = tqdm(
            desc=f"build {suffix}",
            unit=" rows",
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
        )
        try:
            for batch in self._pipeline(rows, executor, translator):
                self._write(batch, files)
                bar.update(len(batch.rows))
                bar.set_postfix(kept=self.counts.kept, dropped=self.counts.dropped, refresh=False)
        finally:
            bar.close()
            files.close()
            if self.executor is None:
                # an interrupted build leaves work queued for later batches: drop it, do not wait for it
                executor.shutdown(cancel_futures=True)
            if self.translator is None:
                translator.close()
        files.complete()
        manifest = self.manifest(
            {stage: path.name for stage, path in files.stage_paths.items()}, files.dropped_path.name
        )
        if self.shard.count == 1:
            write_json(self.out / MANIFEST_FILE, manifest)
        else:
            write_json(self.out / f"manifest-{suffix}.json", manifest)
            merge_shard_manifests(self.out, self.shard.count)
        return manifest

    def _pipeline(
        self, rows: Iterator[SourceRow], executor: Executor, translator: Translator
    ) -> Iterator[Batch]:
        """The batches in order, each with its translations read back.

        A batch is started (filters; image work sent), then translated (image outcomes read; texts
        sent), then finished (translations read). A new batch is started before the one before it is
        translated, and that before the oldest is handed out, so `LOOKAHEAD` batches' requests are in
        flight, and one more batch's image work is queued, while the caller writes.
        """
        pipeline: deque[Batch] = deque()
        for rows_of_batch in _batched(rows, self.config.batch_size):
            pipeline.append(self._start(rows_of_batch, executor))
            if len(pipeline) > 1:
                self._submit_translation(pipeline[-2], translator)
            if len(pipeline) > LOOKAHEAD + 1:
                yield self._finish(pipeline.popleft())
        if pipeline:
            self._submit_translation(pipeline[-1], translator)
        while pipeline:
            yield self._finish(pipeline.popleft())

    def _write(self, batch: Batch, files: ShardFiles) -> None:
        """Count the batch's decisions and write each as a record or a dropped line; tally its rows."""
        for decision in batch.decided:
            held_out = decision.kept and is_held_out(decision.candidate.row, self.config.test_fraction)
            self.counts.add(decision, held_out)
            files.write(decision, held_out)
        for row in batch.rows:
            self.rows_read[row.source] += 1

    def manifest(self, stage_files: dict[str, str], dropped_file: str) -> dict:
        sources = {}
        for source in self.config.sources:
            sources[source] = {}
            for stage in SOURCE_STAGES[source]:
                entry = self.counts.table.get(source, {}).get(stage, empty_entry())
                sources[source][stage] = {**entry, "dropped": dict(sorted(entry["dropped"].items()))}
        return {
            "format": MANIFEST_FORMAT,
            "shards": {"count": self.shard.count, "done": [self.shard.index]},
            "files": {split: [name] for split, name in stage_files.items()} | {"dropped": [dropped_file]},
            "images": IMAGES_DIR,
            "split": {TEST: self.config.test_fraction},
            "rows": dict(self.rows_read),
            "sources": sources,
            "totals": totals(sources),
            "config": self.config.to_json(),
        }


def totals(sources: dict) -> dict:
    """Sums over sources: per stage and overall."""
    result = empty_entry()
    per_stage: dict = {}
    for stages in sources.values():
        for stage, entry in stages.items():
            for bucket in (per_stage.setdefault(stage, empty_entry()), result):
                add_entry(bucket, entry)
    for bucket in [*per_stage.values(), result]:
        bucket["dropped"] = dict(sorted(bucket["dropped"].items()))
    result["stages"] = {stage: per_stage[stage] for stage in STAGES if stage in per_stage}
    return result


def add_entry(target: dict, entry: dict) -> None:
    """Add the counts of `entry` into `target` (both shaped like `empty_entry()`)."""
    for key in ("read", "kept", "test"):
        target[key] += entry[key]
    for reason, count in entry["dropped"].items():
        target["dropped"][reason] = target["dropped"].get(reason, 0) + count


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def merge_shard_manifests(out: Path, count: int) -> dict | None:
    """Once every shard's manifest is in `out`, write their sum as manifest.json (else do nothing)."""
    paths = [out / f"manifest-{Shard(index, count).suffix}.json" for index in range(count)]
    if not all(path.is_file() for path in paths):
        return None
    parts = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    sources: dict = {}
    for part in parts:
        for source, stages in part["sources"].items():
            for stage, entry in stages.items():
                add_entry(sources.setdefault(source, {}).setdefault(stage, empty_entry()), entry)
    for stages in sources.values():
        for entry in stages.values():
            entry["dropped"] = dict(sorted(entry["dropped"].items()))
    files: dict = {}
    for part in parts:
        for kind, names in part["files"].items():
            files.setdefault(kind, []).extend(names)
    merged = {
        "format": MANIFEST_FORMAT,
        "shards": {"count": count, "done": list(range(count))},
        "files": files,
        "images": parts[0]["images"],
        "split": parts[0]["split"],
        "rows": {source: sum(part["rows"][source] for part in parts) for source in parts[0]["rows"]},
        "sources": sources,
        "totals": totals(sources),
        "config": parts[0]["config"],
    }
    write_json(out / MANIFEST_FILE, merged)
    return merged


def build(
    config: BuildConfig,
    out: Path,
    shard: Shard = Shard(),
    workers: int = 1,
    limit: int | None = None,
    progress: bool = True,
    translator: Translator | None = None,
    executor: Executor | None = None,
) -> dict:
    """Build one shard of the dataset into `out`; returns its manifest.

    `translator`: an already made translator (the caller closes it); by default one is made from
    `config.translator` with `make_translator` and closed when the build ends.
    `executor`: where the image work runs (the caller shuts it down; `workers` still sets how many
    chunks a batch's work is cut into); by default `workers` processes, or this process for 1.
    """
    return Builder(config, out, shard, workers, limit, progress, translator, executor).run()
