"""Choosing one frame or slice of a multi-frame image, volume or series: the middle one unless told."""

from __future__ import annotations

from qilin_med_vl.imaging.reasons import FRAME_OUT_OF_RANGE, SLICE_OUT_OF_RANGE, ImageRejected

OUT_OF_RANGE = {"slice": SLICE_OUT_OF_RANGE, "frame": FRAME_OUT_OF_RANGE}  # what -> reason code


def pick_index(requested: int | None, count: int, name: str, what: str) -> int:
    """The 0-based index to show: `requested`, or the middle of `count` (the most representative default)."""
    if requested is None:
        return count // 2
    if not 0 <= requested < count:
        raise ImageRejected(
            OUT_OF_RANGE[what],
            f"{name}: {what} {requested} is out of range; this study has {count} ({what}s 0-{count - 1})",
        )
    return requested
