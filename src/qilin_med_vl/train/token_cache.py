"""Tokenize a stage's records once, into a memory-mapped Arrow cache that every process and every restart reuses.

The cache is a `datasets` table (one row per record: compact `input_ids`/`labels` with each image's run
of tokens held as one token, the expanded `length`, the `image` path, and a `drop_reason` for records
that cannot be used) written by `Dataset.map(num_proc=N)` under a fingerprint of everything the tokens
depend on: the record files (path, size, modification time), the image folder, the tokenizer's full
definition, the chat template, the template name, `max_length`, the image-token count, `<image>`
placement and the format version of this module. A second start with the same inputs — a resume, a
second run, the other processes of a distributed run — only memory-maps the finished files, so its
memory does not grow with the number of records (the pages are the operating system's, shared by all
processes on a machine).

Records are read from JSONL into Arrow by a generator (never all in memory at once). Image files are
checked for existence inside the parallel map, so a missing image is a counted drop, not a crash hours
in; pixels are decoded later, per item, in the data loader.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets.fingerprint import Hasher

from qilin_med_vl.errors import DataError
from qilin_med_vl.imaging.reasons import IMAGE_MISSING
from qilin_med_vl.train.records import ConversationRecord, parse_record, raw_records
from qilin_med_vl.train.tokenize import ConversationTokenizer, SampleDropped

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2  # bump when the rows written here change meaning
DONE_FILE = "done.json"  # written last: a cache folder without it is unfinished and rebuilt
SMALL_DATA = 2000  # records below which worker processes cost more than they save
MAX_WORKERS = 16

RECORD_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "image": datasets.Value("string"),
        "roles": datasets.Sequence(datasets.Value("string")),
        "texts": datasets.Sequence(datasets.Value("string")),
        "where": datasets.Value("string"),
    }
)
TOKEN_FEATURES = datasets.Features(
    {
        "input_ids": datasets.Sequence(datasets.Value("int32")),  # (L',) image runs collapsed
        "labels": datasets.Sequence(datasets.Value("int32")),  # (L',)
        "length": datasets.Value("int32"),  # L, once image tokens are expanded
        "image": datasets.Value("string"),
        "truncated": datasets.Value("bool"),
        "supervised": datasets.Value("int32"),
        "drop_reason": datasets.Value("string"),
        "drop_detail": datasets.Value("string"),
    }
)


def collapse_image_runs(ids: np.ndarray, labels: np.ndarray, image_token_id: int):
    """(ids, labels) with each run of image tokens kept as its first token (truncation never cuts a run)."""
    is_image = ids == image_token_id
    starts = is_image & ~np.concatenate(([False], is_image[:-1]))
    keep = ~is_image | starts
    return ids[keep], labels[keep]


def _record_rows(files: list[str]):
    """Rows of RECORD_FEATURES, one record at a time (the generator `Dataset.from_generator` writes)."""
    for file in files:
        for raw, where in raw_records(Path(file)):
            record = parse_record(raw, where)
            yield {
                "id": record.id,
                "image": record.image,
                "roles": [role for role, _ in record.turns],
                "texts": [text for _, text in record.turns],
                "where": record.where,
            }


class TokenizeRows:
    """The batched map function: record rows -> TOKEN_FEATURES rows (picklable for worker processes)."""

    def __init__(self, tokenizer: ConversationTokenizer, image_folder: str):
        self.tokenizer = tokenizer
        self.image_folder = image_folder

    def one(self, record: ConversationRecord) -> dict:
        empty = np.zeros(0, dtype=np.int32)
        row = {"input_ids": empty, "labels": empty, "length": 0, "image": record.image, "truncated": False,
               "supervised": 0, "drop_reason": None, "drop_detail": None}  # fmt: skip
        if record.image is not None and not os.path.isfile(os.path.join(self.image_folder, record.image)):
            row["drop_reason"] = IMAGE_MISSING
            row["drop_detail"] = f"{record.name}: {os.path.join(self.image_folder, record.image)} not found"
            return row
        try:
            sample = self.tokenizer(record)
        except SampleDropped as dropped:
            row["drop_reason"], row["drop_detail"] = dropped.reason, str(dropped)
            return row
        ids = np.asarray(sample.input_ids, dtype=np.int32)
        labels = np.asarray(sample.labels, dtype=np.int32)
        row["supervised"] = int((labels != -100).sum())
        row["input_ids"], row["labels"] = collapse_image_runs(ids, labels, self.tokenizer.image_token_id)
        row["length"], row["truncated"] = len(ids), sample.truncated
        return row

    def __call__(self, batch: dict) -> dict:
        rows = []
        for record_id, image, roles, texts, where in zip(
            batch["id"], batch["image"], batch["roles"], batch["texts"], batch["where"], strict=True
        ):
            turns = list(zip(roles, texts, strict=True))
            rows.append(self.one(ConversationRecord(id=record_id, image=image, turns=turns, where=where)))
        return {name: [row[name] for row in rows] for name in TOKEN_FEATURES}


def cache_key(files: list[Path], image_folder: Path, tokenizer: ConversationTokenizer) -> str:
    """A fingerprint of everything the tokenized rows depend on."""
    text_tokenizer = tokenizer.tokenizer
    stamps = [(str(Path(f).resolve()), os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    return Hasher.hash(
        {
            "format": CACHE_FORMAT,
            "files": stamps,
            "image_folder": str(Path(image_folder).resolve()),
            "tokenizer": text_tokenizer.backend_tokenizer.to_str(),
            "special": [text_tokenizer.bos_token, text_tokenizer.eos_token, text_tokenizer.pad_token],
            "chat_template": tokenizer.chat_template,
            "template": tokenizer.template,
            "max_length": tokenizer.max_length,
            "image_token": (tokenizer.image_token, tokenizer.image_token_id, tokenizer.num_image_tokens),
            "image_placement": tokenizer.image_placement,
        }
    )


def worker_count(records: int, asked: int | None) -> int:
    if asked is not None:
        return max(1, asked)
    if records < SMALL_DATA:
        return 1
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


def _unwrapped(error: Exception) -> Exception:
    """The DataError a generator or worker raised, out of the wrapper `datasets` puts around it."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, DataError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return error


@dataclass
class CacheResult:
    rows: datasets.Dataset
    folder: Path | None  # None: tokenized in memory (no cache folder)
    reused: bool  # True: an earlier start's cache was memory-mapped, nothing was tokenized


def _read_done(folder: Path) -> datasets.Dataset | None:
    done = folder / DONE_FILE
    if not done.is_file():
        return None
    names = json.loads(done.read_text(encoding="utf-8"))["files"]
    parts = [datasets.Dataset.from_file(str(folder / name)) for name in names]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def tokenized_rows(
    files: list[Path],
    image_folder: Path,
    tokenizer: ConversationTokenizer,
    cache_dir: Path | None,
    num_proc: int | None = None,
) -> CacheResult:
    """The TOKEN_FEATURES rows of `files`: from the cache under `cache_dir` when it holds them, else
    tokenized now (and cached there). `cache_dir=None` tokenizes in memory, caching nothing."""
    key = cache_key(files, image_folder, tokenizer)
    folder = Path(cache_dir) / key if cache_dir is not None else None
    if folder is not None and (cached := _read_done(folder)) is not None:
        logger.info("tokenized records: reusing the cache %s (%d rows)", folder, len(cached))
        return CacheResult(cached, folder, reused=True)

    work = (folder / "work") if folder is not None else None
    if work is not None:
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished earlier attempt
        work.mkdir(parents=True)
    try:
        if work is None:
            records = datasets.Dataset.from_list(
                list(_record_rows([str(f) for f in files])), features=RECORD_FEATURES
            )
        else:
            records = datasets.Dataset.from_generator(
                _record_rows,
                features=RECORD_FEATURES,
                gen_kwargs={"files": [str(f) for f in files]},
                cache_dir=str(work),
            )
        workers = worker_count(len(records), num_proc)
        logger.info("tokenizing %d records with %d process(es)", len(records), workers)
        rows = records.map(
            TokenizeRows(tokenizer, str(image_folder)),
            batched=True,
            batch_size=256,
            num_proc=workers if workers > 1 else None,
            remove_columns=records.column_names,
            features=TOKEN_FEATURES,
            new_fingerprint=key,
            keep_in_memory=folder is None,
            cache_file_name=str(folder / "tokens.arrow") if folder is not None else None,
            desc="tokenizing",
        )
    except Exception as error:  # a DataError inside the generator or a worker arrives wrapped
        cause = _unwrapped(error)
        if cause is error:
            raise
        raise cause from None
    if folder is None:
        return CacheResult(rows, None, reused=False)
    names = sorted({Path(item["filename"]).name for item in rows.cache_files})
    del rows
    shutil.rmtree(work, ignore_errors=True)  # the intermediate record table
    (folder / DONE_FILE).write_text(json.dumps({"files": names, "key": key}), encoding="utf-8")
    return CacheResult(_read_done(folder), folder, reused=False)


def kept_indices(rows: datasets.Dataset) -> np.ndarray:
    """(kept,) int64 row numbers of the records that were not dropped."""
    return np.flatnonzero(pc.is_null(rows.data.column("drop_reason")).to_numpy(zero_copy_only=False))


def column(rows: datasets.Dataset, name: str) -> np.ndarray:
    return rows.data.column(name).to_numpy(zero_copy_only=False)
