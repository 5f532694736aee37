"""Raster image loading with safety limits (decompression bombs, truncation) for every image we accept."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from PIL import Image

from qilin_med_vl.errors import DataError

DEFAULT_MAX_PIXELS = 64_000_000  # larger images are refused as possible decompression bombs


class ImageRejected(DataError):
    """An image that cannot be used; `reason` is a short code recorded in manifests."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def open_image(source: str | Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a PNG/JPEG/TIFF/BMP/... fully into an RGB image, or raise `ImageRejected`."""
    name = getattr(source, "name", source)
    try:
        with Image.open(source) as image:
            if image.width * image.height > max_pixels:
                raise ImageRejected(
                    "image_too_large",
                    f"{name}: {image.width}x{image.height} pixels is over the limit of {max_pixels}",
                )
            image.load()
            return image.convert("RGB")
    except ImageRejected:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageRejected("image_unreadable", f"{name}: cannot decode image ({error})") from error
