"""The translation memory: a SQLite file of accepted translations and of drop decisions.

Keyed by (model, prompt version, source text). Every row is committed as it is written, so a run that is
killed keeps everything it already paid for, and a resumed run asks the service nothing it has an
answer for. Two tables:
- `translations`: accepted translations (from the service after passing the checks, or imported pairs);
- `failures`: answers that failed the checks, with the reason and the number of failed attempts (1: the
  retry with the reason is still to do; 2: the text is dropped with that reason). A later success
  replaces the failure. Failures are never served as translations.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.errors import DataError

SCHEMA_VERSION = 1
TRANSLATION_MEMORY_FILE = "translation_memory.sqlite"  # where a build keeps its memory, in its output folder
ORIGIN_SERVICE = "service"  # translated by the chat endpoint and passed the checks
ORIGIN_IMPORT = "import"  # imported with `qilin data tm import`
ORIGIN_REVIEW = "review"  # accepted or corrected by a reviewer (`qilin data review import`)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    origin TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (model, prompt_version, source)
);
CREATE TABLE IF NOT EXISTS failures (
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    output TEXT,
    attempts INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (model, prompt_version, source)
);
"""


def default_memory_path() -> Path:
    """$XDG_CACHE_HOME/qilin-med-vl/translation_memory.sqlite (~/.cache when XDG_CACHE_HOME is unset)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache_home) / "qilin-med-vl" / "translation_memory.sqlite"


@dataclass(frozen=True)
class RecordedFailure:
    reason: str
    detail: str
    output: str | None
    attempts: int


@dataclass(frozen=True)
class ImportCounts:
    added: int = 0
    replaced: int = 0
    kept: int = 0  # an entry already there, left alone (`replace=False`) or identical


class TranslationMemory:
    """One SQLite file, one connection: use it from one thread at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # autocommit: each write is its own transaction, durable as soon as the call returns
            # check_same_thread off: the openai translator opens it in the caller's thread, uses it only
            # from its loop thread, and closes it from the caller's thread once that loop has stopped
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise DataError(
                    f"translation memory {self.path} has schema version {version}, this qilin reads "
                    f"{SCHEMA_VERSION}: use a matching qilin, or another --cache file"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise DataError(
                f"translation memory {self.path} is not a SQLite database ({error}): point the cache at "
                "another file, or move this one away"
            ) from error

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TranslationMemory:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- lookups -------------------------------------------------------------------------------------
    def translation(self, model: str, prompt_version: str, source: str) -> str | None:
        row = self._db.execute(
            "SELECT target FROM translations WHERE model=? AND prompt_version=? AND source=?",
            (model, prompt_version, source),
        ).fetchone()
        return None if row is None else row[0]

    def origin(self, model: str, prompt_version: str, source: str) -> str | None:
        """Where the stored translation came from (ORIGIN_SERVICE, _IMPORT, _REVIEW); None if none is stored."""
        row = self._db.execute(
            "SELECT origin FROM translations WHERE model=? AND prompt_version=? AND source=?",
            (model, prompt_version, source),
        ).fetchone()
        return None if row is None else row[0]

    def failure(self, model: str, prompt_version: str, source: str) -> RecordedFailure | None:
        row = self._db.execute(
            "SELECT reason, detail, output, attempts FROM failures "
            "WHERE model=? AND prompt_version=? AND source=?",
            (model, prompt_version, source),
        ).fetchone()
        return None if row is None else RecordedFailure(*row)

    def keys(self) -> list[tuple[str, str, int]]:
        """(model, prompt version, number of translations) for every key in the memory."""
        return self._db.execute(
            "SELECT model, prompt_version, COUNT(*) FROM translations GROUP BY model, prompt_version "
            "ORDER BY model, prompt_version"
        ).fetchall()

    # --- writes --------------------------------------------------------------------------------------
    def record_translation(
        self, model: str, prompt_version: str, source: str, target: str, origin: str = ORIGIN_SERVICE
    ) -> None:
        key = (model, prompt_version, source)
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?, ?)",
                (*key, target, origin, time.time()),
            )
            self._db.execute("DELETE FROM failures WHERE model=? AND prompt_version=? AND source=?", key)

    def record_failure(
        self,
        model: str,
        prompt_version: str,
        source: str,
        reason: str,
        detail: str,
        output: str | None,
        attempts: int,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (model, prompt_version, source, reason, detail, output, attempts, time.time()),
        )

    def import_pairs(
        self, model: str, prompt_version: str, pairs: Iterable[tuple[str, str]], replace: bool = True
    ) -> ImportCounts:
        """Store (source, target) pairs under one key in one transaction; a bad pair stores nothing."""
        added = replaced = kept = 0
        with self._transaction():
            for source, target in pairs:
                existing = self.translation(model, prompt_version, source)
                if existing is not None and (existing == target or not replace):
                    kept += 1
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?, ?)",
                    (model, prompt_version, source, target, ORIGIN_IMPORT, time.time()),
                )
                self._db.execute(
                    "DELETE FROM failures WHERE model=? AND prompt_version=? AND source=?",
                    (model, prompt_version, source),
                )
                if existing is None:
                    added += 1
                else:
                    replaced += 1
        return ImportCounts(added=added, replaced=replaced, kept=kept)

    def export_pairs(self, model: str, prompt_version: str) -> Iterator[tuple[str, str]]:
        """(source, target) pairs under one key, sorted by source so exports are reproducible."""
        cursor = self._db.execute(
            "SELECT source, target FROM translations WHERE model=? AND prompt_version=? ORDER BY source",
            (model, prompt_version),
        )
        yield from cursor

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """BEGIN/COMMIT around a block on an autocommit connection; ROLLBACK when the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
