"""Multi-turn Chinese conversations about a build's figures, generated from their text and grounded in it.

`converse(folder, ConverseConfig(...))` (run.py) is what `qilin data converse` runs; grounding.py holds
the checks every answer goes through. Guide: docs/conversations_and_review.md.
"""

from qilin_med_vl.data.converse.config import ConverseConfig

__all__ = ["ConverseConfig"]
