"""A shard of a run: `--shard I/N` answers the items whose index % N == I."""

from __future__ import annotations

from typing import NamedTuple


class Shard(NamedTuple):
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"  # as written on the command line

    def holds(self, item_index: int) -> bool:
        return item_index % self.count == self.index
