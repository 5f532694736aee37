"""The image work of one sample, run in worker processes: check the images of a row, write its picture.

A row names zero or more images. `prepare_images` refuses the row with a reason code (no image, more
than `max_images`, any image missing/unreadable/truncated/too small/too large), or writes the one
picture the sample will show under the output `images/` folder and returns its relative path:

- one image: the original file, copied byte for byte to `images/<source>/<name>`;
- 2..max_images: their concatenation (`images.concatenate`), JPEG quality 95, at
  `images/<source>/composite/<sha1 of the names>.jpg`.

Files are written atomically (temporary name, then rename) and skipped when already present, so
several rows may share a figure and a killed build can be resumed over the same folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qilin_med_vl.data import records
from qilin_med_vl.data.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    ImageRejected,
    check_size,
    concatenate,
    open_image,
)

DEFAULT_MAX_IMAGES = 4  # paper 3.3: more images per text would make the composite too low-resolution
COMPOSITE_JPEG_QUALITY = 95


@dataclass(frozen=True)
class ImageSettings:
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    max_images: int = DEFAULT_MAX_IMAGES


@dataclass(frozen=True)
class ImageTask:
    source: str
    names: tuple[str, ...]
    image_root: str  # the source's image folder
    images_out: str  # the output images/ folder
    settings: ImageSettings


@dataclass(frozen=True)
class ImageOutcome:
    path: str | None = None  # relative to images/, when accepted
    reason: str | None = None
    detail: str = ""
    layout: str | None = None  # horizontal / vertical for composites


def _safe_relative(name: str) -> PurePosixPath | None:
    """The name as a relative path that stays inside its folder, or None."""
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return None
    return relative


def _write_atomically(destination: Path, write) -> None:
    if destination.exists():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    write(temporary)
    os.replace(temporary, destination)


def prepare_images(task: ImageTask) -> ImageOutcome:
    """Check the images of one row and write its picture; see the module docstring."""
    settings = task.settings
    if not task.names:
        return ImageOutcome(reason=records.NO_IMAGE, detail="the row names no image")
    if len(task.names) > settings.max_images:
        return ImageOutcome(
            reason=records.TOO_MANY_IMAGES,
            detail=f"{len(task.names)} images, more than the {settings.max_images} a composite may hold",
        )
    root = Path(task.image_root)
    relatives = []
    for name in task.names:
        relative = _safe_relative(name)
        path = root / relative if relative is not None else None
        if path is None or not path.is_file():
            return ImageOutcome(reason=records.IMAGE_MISSING, detail=f"{root / name}: no such file")
        relatives.append(relative)
    decoded = []
    try:
        for relative in relatives:
            image = open_image(root / relative, max_pixels=settings.max_pixels)
            check_size(image, str(root / relative), settings.min_side)
            decoded.append(image)
    except ImageRejected as rejected:
        return ImageOutcome(reason=rejected.reason, detail=str(rejected))
    images_out = Path(task.images_out)
    if len(decoded) == 1:
        output = PurePosixPath(task.source) / relatives[0]
        _write_atomically(images_out / output, lambda target: shutil.copyfile(root / relatives[0], target))
        return ImageOutcome(path=str(output))
    composite, layout = concatenate(decoded)
    digest = hashlib.sha1("\n".join(str(relative) for relative in relatives).encode()).hexdigest()
    output = PurePosixPath(task.source) / "composite" / f"{digest}.jpg"
    _write_atomically(
        images_out / output,
        lambda target: composite.save(target, format="JPEG", quality=COMPOSITE_JPEG_QUALITY),
    )
    return ImageOutcome(path=str(output), layout=layout)
