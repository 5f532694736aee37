"""The conversation memory: a SQLite file of every paid answer, keyed like the translation memory.

Key: (model, prompt version with the round range, source text). The model's raw answer is stored with
its token counts the moment it arrives (autocommit), before any check, so a killed run keeps everything
it paid for and a resumed run asks only for the rest; the checks are re-applied to the stored answer on
every run, so changing them needs no new request. Failed requests are not stored: nothing was paid.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.errors import DataError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    source TEXT NOT NULL,
    content TEXT NOT NULL,
    truncated INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (model, prompt_version, source)
);
"""


@dataclass(frozen=True)
class ChatAnswer:
    content: str
    truncated: bool  # finish_reason was "length"
    prompt_tokens: int  # as the endpoint's `usage` reports them; 0 when it reports none
    completion_tokens: int


class ConversationMemory:
    """One SQLite file, one connection, used from one thread at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise DataError(
                    f"conversation memory {self.path} has schema version {version}, this qilin reads "
                    f"{SCHEMA_VERSION}: use a matching qilin, or set cache_path to another file"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise DataError(
                f"conversation memory {self.path} is not a SQLite database ({error}): set cache_path to "
                "another file, or move this one away"
            ) from error

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ConversationMemory:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def answer(self, model: str, prompt_version: str, source: str) -> ChatAnswer | None:
        row = self._db.execute(
            "SELECT content, truncated, prompt_tokens, completion_tokens FROM answers "
            "WHERE model=? AND prompt_version=? AND source=?",
            (model, prompt_version, source),
        ).fetchone()
        return None if row is None else ChatAnswer(row[0], bool(row[1]), row[2], row[3])

    def record(self, model: str, prompt_version: str, source: str, answer: ChatAnswer) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                model,
                prompt_version,
                source,
                answer.content,
                int(answer.truncated),
                answer.prompt_tokens,
                answer.completion_tokens,
                time.time(),
            ),
        )
