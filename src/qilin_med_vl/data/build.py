"""The ChiMed-VL build: stream source rows -> candidates -> filters -> images -> translation -> records.

Rows are read one source after another (pmc_oa, pmc_case_report, pmc_vqa) and handled `batch_size`
rows at a time: text filters, then image work (in `workers` processes, results in row order), then
one `translate_batch` call for the batch's unique texts, then composition and writing. Memory stays
flat in the number of rows: nothing but the current batch and a bounded cache of image results is
held. Every candidate ends as one line of a stage file (kept) or of the dropped log (dropped), and is
counted in the manifest, so per source and stage `kept + sum(dropped.values()) == read`.

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
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from qilin_med_vl.data import records
from qilin_med_vl.data.build_config import BuildConfig
from qilin_med_vl.data.composite import ImageOutcome, ImageTask, prepare_images
from qilin_med_vl.data.filters import check_texts
from qilin_med_vl.data.records import SOURCE_STAGES, Candidate, Decision, SourceRow
from qilin_med_vl.data.sources import HEADER_CHECKS, READERS, expand_globs
from qilin_med_vl.data.split import is_held_out
from qilin_med_vl.data.templates import compose, load_prompt_pools, needed_fields
from qilin_med_vl.data.translation import Translator, make_translator
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


def _row_key(row: SourceRow) -> tuple[str, int]:
    return row.source, row.index


def _batched(rows: Iterator[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    while batch := list(islice(rows, size)):
        yield batch


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
    ):
        self.config = config
        self.translator = translator  # None: made from config.translator, and closed at the end
        self.out = out
        self.shard = shard
        self.workers = max(1, workers)
        self.limit = limit
        self.progress = progress
        self.pools = load_prompt_pools()
        self.counts = Counts()
        self.rows_read = dict.fromkeys(config.sources, 0)  # source rows (a CaseReport row feeds two stages)
        self.image_cache: OrderedDict[tuple, ImageOutcome] = OrderedDict()

    # -- per batch -------------------------------------------------------------------------------
    def _fields(self, candidate: Candidate) -> tuple[str, ...]:
        return needed_fields(candidate, self.config.vqa_format, self.config.case_report_alignment_fields)

    def _image_outcomes(
        self, rows: list[SourceRow], executor: Executor | None
    ) -> dict[tuple[str, int], ImageOutcome]:
        """Image verdict (and written picture) for each row index, cached across batches."""
        outcomes: dict[tuple[str, int], ImageOutcome] = {}
        tasks: list[tuple[tuple[str, int], tuple, ImageTask]] = []
        for row in rows:
            key = (row.source, row.images)
            if key in self.image_cache:
                self.image_cache.move_to_end(key)
                outcomes[_row_key(row)] = self.image_cache[key]
                continue
            task = ImageTask(
                source=row.source,
                names=row.images,
                image_root=str(self.config.sources[row.source].images),
                images_out=str(self.out / "images"),
                settings=self.config.images,
            )
            tasks.append((_row_key(row), key, task))
        unique: dict[tuple, ImageTask] = {}
        for _, key, task in tasks:
            unique.setdefault(key, task)
        keys = list(unique)
        if executor is None or len(keys) < 2:
            results = [prepare_images(unique[key]) for key in keys]
        else:
            # a few chunks per worker: one task per record spends its time on pickling round trips
            chunk = max(1, len(keys) // (CHUNKS_PER_WORKER * self.workers))
            results = list(executor.map(prepare_images, [unique[key] for key in keys], chunksize=chunk))
        fresh = dict(zip(keys, results, strict=True))
        for index, key, _ in tasks:
            outcomes[index] = fresh[key]
        for key, outcome in fresh.items():
            self.image_cache[key] = outcome
            if len(self.image_cache) > IMAGE_CACHE_ENTRIES:
                self.image_cache.popitem(last=False)
        return outcomes

    def _decide_batch(
        self, rows: list[SourceRow], translator: Translator, executor: Executor | None
    ) -> list[Decision]:
        """One decision per candidate of `rows`, in row then stage order."""
        candidates = [Candidate(row, stage) for row in rows for stage in SOURCE_STAGES[row.source]]
        decisions = self._filter_texts(candidates)  # by candidate position
        undecided = {_row_key(c.row) for position, c in enumerate(candidates) if position not in decisions}
        image_outcomes = self._image_outcomes([row for row in rows if _row_key(row) in undecided], executor)
        for position, candidate in enumerate(candidates):
            if position not in decisions:
                outcome = image_outcomes[_row_key(candidate.row)]
                if outcome.reason is not None:
                    decisions[position] = Decision(candidate, reason=outcome.reason, detail=outcome.detail)
        pending = [(position, c) for position, c in enumerate(candidates) if position not in decisions]
        translated = self._translate(pending, translator)
        for position, candidate in pending:
            decisions[position] = self._compose(
                candidate, translated, image_outcomes[_row_key(candidate.row)]
            )
        return [decisions[position] for position in range(len(candidates))]

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

    def _translate(self, pending: list[tuple[int, Candidate]], translator: Translator) -> dict:
        """English text -> Translation for the batch: one call, unique non-empty texts in order."""
        texts: dict[str, None] = {}
        for _, candidate in pending:
            for name in self._fields(candidate):
                if candidate.row.texts.get(name):
                    texts.setdefault(candidate.row.texts[name])
        translations = translator.translate_batch(list(texts)) if texts else []
        return dict(zip(texts, translations, strict=True))

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
        stage_paths = {split: self.out / shard_file_name(split, suffix) for split in splits}
        dropped_path = self.out / f"dropped-{suffix}.jsonl"
        partial = {
            path: path.with_name(path.name + ".partial") for path in [*stage_paths.values(), dropped_path]
        }
        handles = {path: open(partial[path], "w", encoding="utf-8", newline="\n") for path in partial}
        translator = self.translator or make_translator(self.config.translator_config(self.out))
        executor = (
            ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            if self.workers > 1
            else None
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
            for batch in _batched(rows, self.config.batch_size):
                for decision in self._decide_batch(batch, translator, executor):
                    held_out = decision.kept and is_held_out(
                        decision.candidate.row, self.config.test_fraction
                    )
                    self.counts.add(decision, held_out)
                    if decision.kept:
                        line = json.dumps(decision.record, ensure_ascii=False)
                        split = TEST if held_out else decision.candidate.stage
                        handles[stage_paths[split]].write(line + "\n")
                    else:
                        handles[dropped_path].write(
                            json.dumps(
                                {
                                    "id": decision.candidate.record_id,
                                    "source": decision.candidate.row.source,
                                    "stage": decision.candidate.stage,
                                    "reason": decision.reason,
                                    "detail": decision.detail,
                                    "location": decision.candidate.row.location,
                                },
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                for row in batch:
                    self.rows_read[row.source] += 1
                bar.update(len(batch))
                bar.set_postfix(kept=self.counts.kept, dropped=self.counts.dropped, refresh=False)
        finally:
            bar.close()
            for handle in handles.values():
                handle.close()
            if executor is not None:
                executor.shutdown()
            if self.translator is None:
                translator.close()
        for final, temporary in partial.items():
            os.replace(temporary, final)
        manifest = self.manifest({stage: path.name for stage, path in stage_paths.items()}, dropped_path.name)
        if self.shard.count == 1:
            write_json(self.out / MANIFEST_FILE, manifest)
        else:
            write_json(self.out / f"manifest-{suffix}.json", manifest)
            merge_shard_manifests(self.out, self.shard.count)
        return manifest

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
) -> dict:
    """Build one shard of the dataset into `out`; returns its manifest.

    `translator`: an already made translator (the caller closes it); by default one is made from
    `config.translator` with `make_translator` and closed when the build ends.
    """
    return Builder(config, out, shard, workers, limit, progress, translator).run()
