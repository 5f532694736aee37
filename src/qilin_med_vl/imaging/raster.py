"""Raster image loading with safety limits (decompression bombs, truncation) and multi-image composites.

Every image we accept is fully decoded once; what cannot be decoded is refused with a reason code
(`ImageRejected.reason`) that the dataset builder records in its manifest:

- `image_too_large`: width x height over `max_pixels` (read from the header, before any pixel is
  decoded, so a decompression bomb costs nothing);
- `image_truncated`: the file starts like a PNG/JPEG/GIF but its end marker is missing and it does not
  decode;
- `image_unreadable`: anything else that does not decode;
- `image_too_small`: (from `check_size`) a side shorter than the minimum.

Multi-image samples (paper 3.3) are concatenated into one picture by `concatenate`; the layout rule
is documented in `choose_layout`.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from qilin_med_vl.imaging.reasons import (
    IMAGE_TOO_LARGE,
    IMAGE_TOO_SMALL,
    IMAGE_TRUNCATED,
    IMAGE_UNREADABLE,
    ImageRejected,
)

DEFAULT_MAX_PIXELS = 64_000_000  # larger images are refused as possible decompression bombs
DEFAULT_MIN_SIDE = 32  # images with a shorter side carry too little to learn from (icons, rules)

# (magic at the start, marker that ends a complete file, whether writers may pad after the marker)
_END_MARKERS = (
    (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82", True),
    (b"\xff\xd8\xff", b"\xff\xd9", True),
    (b"GIF8", b";", False),  # a one-byte trailer: only the very last byte counts
)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error)


def _looks_truncated(head: bytes, tail: bytes) -> bool:
    """True when the bytes start like a format with an end marker and do not end with it."""
    for magic, end_marker, may_pad in _END_MARKERS:
        if head.startswith(magic):
            # some writers pad after the end marker: then a marker within the last bytes still counts
            return end_marker not in tail if may_pad else not tail.endswith(end_marker)
    return False


def _head_and_tail(source: str | Path | BinaryIO) -> tuple[bytes, bytes]:
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as handle:
                return _read_ends(handle)
        position = source.tell()
        try:
            return _read_ends(source)
        finally:
            source.seek(position)
    except OSError:
        return b"", b""


def _read_ends(handle: BinaryIO) -> tuple[bytes, bytes]:
    handle.seek(0)
    head = handle.read(16)
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 64))
    return head, handle.read(64)


def open_image(source: str | Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a PNG/JPEG/TIFF/BMP/... fully into an RGB image, or raise `ImageRejected`."""
    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "<image stream>")
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own soft limit; our max_pixels decides, the warning is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image_file = Image.open(source)
        with image_file as image:
            if image.width * image.height > max_pixels:
                raise ImageRejected(
                    IMAGE_TOO_LARGE,
                    f"{name}: {image.width}x{image.height} pixels is over the limit of {max_pixels}",
                )
            image.load()
            return image.convert("RGB")
    except ImageRejected:
        raise
    except Image.DecompressionBombError as error:
        # Pillow's own guard fires in Image.open for sizes far beyond its limit: same verdict as ours
        raise ImageRejected(IMAGE_TOO_LARGE, f"{name}: {error}") from error
    except _DECODE_ERRORS as error:
        head, tail = _head_and_tail(source)
        if _looks_truncated(head, tail):
            raise ImageRejected(IMAGE_TRUNCATED, f"{name}: the file is cut short ({error})") from error
        if isinstance(error, UnidentifiedImageError):  # its message repeats the path or a stream's repr
            raise ImageRejected(IMAGE_UNREADABLE, f"{name}: not in an image format Pillow reads") from error
        raise ImageRejected(IMAGE_UNREADABLE, f"{name}: cannot decode image ({error})") from error


def check_size(image: Image.Image, name: str, min_side: int) -> None:
    """Refuse an image whose shorter side is under `min_side` pixels."""
    if min(image.size) < min_side:
        raise ImageRejected(
            IMAGE_TOO_SMALL,
            f"{name}: {image.width}x{image.height} pixels, a side is under the minimum of {min_side}",
        )
