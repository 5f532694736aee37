"""The held-out split of a build, by PMC article: every record of an article lands on the same side.

A row's article is the first `PMC<digits>` in its source identifier (PMC-OA `pmcid`, PMC-CaseReport
`PMC_id`, PMC-VQA `Figure_path` such as `PMC8253873_Fig1_46.jpg`); a row without one is its own
article (its identifier, or its position). An article is held out when the SHA-256 of its id, read as a
number in [0, 1), is below the test fraction: deterministic, independent of the seed, of sharding and
of the order rows are read in, and stable as the fraction grows (a larger test split contains the
smaller one).
"""

from __future__ import annotations

import hashlib
import re

from qilin_med_vl.data.records import SourceRow

ARTICLE_ID = re.compile(r"PMC\d+", re.IGNORECASE)
SPLIT_SALT = "qilin-med-vl/test-split/1"  # changing it reshuffles every held-out split


def article_id(row: SourceRow) -> str:
    match = ARTICLE_ID.search(row.ref)
    if match:
        return match.group(0).upper()
    return row.ref or f"{row.source}#{row.index}"


def article_position(article: str) -> float:
    """A uniform number in [0, 1) fixed by the article id."""
    digest = hashlib.sha256(f"{SPLIT_SALT}\x00{article}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(row: SourceRow, test_fraction: float) -> bool:
    return test_fraction > 0 and article_position(article_id(row)) < test_fraction
