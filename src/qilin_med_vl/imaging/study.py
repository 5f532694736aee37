"""The one entry point that turns whatever image a user gives (path, folder or bytes) into an RGB picture.

`load_study` recognises the kind from the content, not the name: DICOM (with or without preamble; a folder
of one DICOM series), NIfTI-1/2 (.nii, .nii.gz), else PNG/JPEG/TIFF/BMP through `open_image`. It returns a
`Study`: the RGB image and a description made only of non-identifying facts (see data/dicom.py's
allow-list), safe to log, print, put in prompts and return from an API.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from qilin_med_vl.imaging.dicom import decode_dicom, looks_like_dicom, read_dataset
from qilin_med_vl.imaging.dicom_series import pick_series_slice
from qilin_med_vl.imaging.nifti import GZIP_MAGIC, gunzip_head, load_nifti, sniff_nifti
from qilin_med_vl.imaging.raster import DEFAULT_MAX_PIXELS, open_image
from qilin_med_vl.imaging.reasons import (
    FRAME_OUT_OF_RANGE,
    IMAGE_MISSING,
    IMAGE_UNREADABLE,
    SLICE_OUT_OF_RANGE,
    WINDOW_NOT_APPLICABLE,
    ImageRejected,
)
from qilin_med_vl.imaging.windows import (
    WINDOW_CHOICES,
    WINDOW_HELP,
    WINDOW_PRESETS,
    WindowRequest,
    parse_window,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "WINDOW_CHOICES",
    "WINDOW_HELP",
    "WINDOW_PRESETS",
    "ImageRejected",
    "Study",
    "load_study",
    "parse_window",
]

logger = logging.getLogger(__name__)

ACCEPTED_FORMATS = "PNG, JPEG, TIFF, BMP, GIF, WebP, DICOM (a file or a series folder), NIfTI (.nii, .nii.gz)"
UPLOAD_NAME = "uploaded image"  # how messages refer to bytes input when the caller gives no name
_HEAD_BYTES = 2048  # enough for the DICOM preamble and magic, and a NIfTI-2 header


@dataclass(frozen=True)
class Study:
    """A picture ready for the model: `image` (RGB) and `description` (non-identifying facts, all strings)."""

    image: Image.Image
    description: dict[str, str]

    def summary(self) -> str:
        """One line for logs and prompts, e.g. 'DICOM CT CHEST, 512x512, window lung (...)'."""
        facts = self.description
        parts = [" ".join(facts[key] for key in ("format", "modality", "body_part") if key in facts)]
        parts.append(facts["size"])
        parts += [f"{key} {facts[key]}" for key in ("frame", "slice", "window") if key in facts]
        return ", ".join(parts)


def load_study(
    source: str | Path | bytes,
    *,
    window: WindowRequest = None,
    frame: int | None = None,
    slice_index: int | None = None,
    axis: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> Study:
    """Decode `source` into a Study, or raise ImageRejected (a QilinError) saying what is wrong and why.

    window: None or "auto" (the study's own window, else percentiles), a WINDOW_PRESETS name (CT only),
        a (centre, width) pair or the text "centre,width"; greyscale DICOM and NIfTI only.
    frame: 0-based frame of a multi-frame DICOM, or volume of a 4-D NIfTI (default: the middle one).
    slice_index: 0-based slice of a NIfTI volume along `axis`, or of a DICOM series folder (default: middle).
    axis: NIfTI slicing axis after RAS+ reorientation: 0 sagittal, 1 coronal, 2 axial.
    name: how messages refer to the input (default: the path, or "uploaded image" for bytes).
    """
    choice = parse_window(window)
    facts_from_folder: dict[str, str] = {}
    if isinstance(source, bytes | bytearray | memoryview):
        data: Path | bytes = bytes(source)
        label = name or UPLOAD_NAME
        head = data[:_HEAD_BYTES]
    else:
        data = Path(source)
        label = name or str(source)
        if data.is_dir():
            chosen = pick_series_slice(data, slice_index, label)
            facts_from_folder = chosen.facts
            data, label, slice_index = chosen.path, f"{label}/{chosen.path.name}", None
        head = _read_head(data, label)

    if looks_like_dicom(head):
        if slice_index is not None:
            raise ImageRejected(
                SLICE_OUT_OF_RANGE,
                f"{label}: a slice (--slice) is chosen in a NIfTI volume or a DICOM series folder; "
                "use a frame (--frame) for the frames of one DICOM file",
            )
        picture = decode_dicom(
            read_dataset(data, label), label, window=choice, frame=frame, max_pixels=max_pixels
        )
        return _study(picture.pixels, {"format": "DICOM", **picture.facts, **facts_from_folder})

    kind = sniff_nifti(head, gunzip_head(data) if head[:2] == GZIP_MAGIC else None)
    if kind is not None:
        picture = load_nifti(
            data, label, window=choice, frame=frame, slice_index=slice_index, axis=axis, max_pixels=max_pixels
        )
        return _study(
            picture.pixels, {"format": "NIfTI-2" if kind.endswith("2") else "NIfTI-1", **picture.facts}
        )

    return _raster(data, label, choice.is_auto, frame, slice_index, max_pixels)


def _read_head(path: Path, label: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(_HEAD_BYTES)
    except FileNotFoundError:
        raise ImageRejected(IMAGE_MISSING, f"{label}: no such file or folder") from None
    except OSError as error:
        raise ImageRejected(IMAGE_UNREADABLE, f"{label}: cannot read the file ({error.strerror})") from None


def _raster(
    data: Path | bytes,
    label: str,
    auto_window: bool,
    frame: int | None,
    slice_index: int | None,
    max_pixels: int,
) -> Study:
    """PNG/JPEG/TIFF/BMP/...: already display pixels, so windows, frames and slices do not apply."""
    for asked, reason, what in (
        (not auto_window, WINDOW_NOT_APPLICABLE, "a window (--window)"),
        (frame not in (None, 0), FRAME_OUT_OF_RANGE, "a frame (--frame)"),
        (slice_index not in (None, 0), SLICE_OUT_OF_RANGE, "a slice (--slice)"),
    ):
        if asked:
            raise ImageRejected(
                reason,
                f"{label}: {what} was asked for, but this is not a DICOM or NIfTI study; "
                "windows, frames and slices apply to DICOM and NIfTI only",
            )
    try:
        if isinstance(data, bytes):
            stream = io.BytesIO(data)
            stream.name = label  # open_image names the input by it in its messages
            image = open_image(stream, max_pixels)
        else:
            with open(data, "rb") as handle:
                stream = io.BytesIO(handle.read())
            stream.name = label
            image = open_image(stream, max_pixels)
    except ImageRejected as error:
        if error.reason != IMAGE_UNREADABLE:
            raise
        raise ImageRejected(IMAGE_UNREADABLE, f"{error}; accepted: {ACCEPTED_FORMATS}") from error
    with Image.open(io.BytesIO(stream.getvalue())) as lazy:  # reads only the header, to name the format
        file_format = lazy.format or "image"
    facts = {"format": file_format, "size": f"{image.width}x{image.height}"}
    logger.debug("%s: %s", label, facts)
    return Study(image=image, description=facts)


def _study(pixels: np.ndarray, facts: dict[str, str]) -> Study:
    image = Image.fromarray(pixels).convert("RGB")  # (H, W) grey or (H, W, 3) -> RGB
    facts["size"] = f"{image.width}x{image.height}"
    logger.debug("loaded %s", facts)
    return Study(image=image, description=facts)
