"""The image work of one sample, run in worker processes: check the images of a row, write its picture.

A row names zero or more images. `prepare_images` refuses the row with a reason code (no image, more
than `max_images`, any image missing/unreadable/truncated/too small/too large), or writes the one
picture the sample will show under the output `images/` folder and returns its relative path:

- one image: the original file, copied byte for byte to `images/<source>/<name>`;
- 2..max_images: their concatenation (`concatenate` below), JPEG quality 95, at
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

from PIL import Image

from qilin_med_vl.data import records
from qilin_med_vl.imaging.raster import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, check_size, open_image
from qilin_med_vl.imaging.reasons import IMAGE_MISSING, ImageRejected

DEFAULT_MAX_IMAGES = 4  # paper 3.3: more images per text would make the composite too low-resolution
COMPOSITE_JPEG_QUALITY = 95
HORIZONTAL = "horizontal"
VERTICAL = "vertical"


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
            return ImageOutcome(reason=IMAGE_MISSING, detail=f"{root / name}: no such file")
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


def prepare_image_tasks(tasks: list[ImageTask]) -> list[ImageOutcome]:
    """`prepare_images` of each task, in order: one round trip to a worker for several rows."""
    return [prepare_images(task) for task in tasks]


def choose_layout(sizes: list[tuple[int, int]]) -> str:
    """Horizontal or vertical concatenation of images with these (width, height) sizes.

    Rule: horizontally, every image is scaled to a common height, so the row's aspect ratio
    (width / height) is the sum of the images' aspect ratios, sum(w/h). Vertically, every image is
    scaled to a common width, so the column's aspect ratio is 1 / sum(h/w). Neither depends on the
    common size chosen. We pick the layout whose aspect ratio r is the least extreme, i.e. has the
    smaller max(r, 1/r); a tie goes to horizontal. So wide images are stacked vertically, tall
    images side by side, and mixed sets end up as close to square as either layout allows.
    """
    row_ratio = sum(width / height for width, height in sizes)
    column_ratio = 1.0 / sum(height / width for width, height in sizes)
    return HORIZONTAL if max(row_ratio, 1 / row_ratio) <= max(column_ratio, 1 / column_ratio) else VERTICAL


def scaled_sizes(sizes: list[tuple[int, int]], layout: str) -> list[tuple[int, int]]:
    """Sizes after scaling to the smallest height (horizontal) or smallest width (vertical).

    Scaling to the smallest never enlarges an image: no invented detail, and the composite never has
    more pixels than its inputs together.
    """
    if layout == HORIZONTAL:
        common = min(height for _, height in sizes)
        return [(max(1, round(width * common / height)), common) for width, height in sizes]
    common = min(width for width, _ in sizes)
    return [(common, max(1, round(height * common / width))) for width, height in sizes]


def concatenate(images: list[Image.Image]) -> tuple[Image.Image, str]:
    """One RGB picture holding `images` in order (left to right or top to bottom), and its layout."""
    sizes = [image.size for image in images]
    layout = choose_layout(sizes)
    targets = scaled_sizes(sizes, layout)
    if layout == HORIZONTAL:
        canvas = Image.new("RGB", (sum(width for width, _ in targets), targets[0][1]))
    else:
        canvas = Image.new("RGB", (targets[0][0], sum(height for _, height in targets)))
    offset = 0
    for image, target in zip(images, targets, strict=True):
        piece = image if image.size == target else image.resize(target, Image.Resampling.LANCZOS)
        canvas.paste(piece, (offset, 0) if layout == HORIZONTAL else (0, offset))
        offset += target[0] if layout == HORIZONTAL else target[1]
    return canvas, layout
