"""Test inputs of the data tests: the public-format source files (tests/data/fixtures) plus their images.

The text files are committed as the public datasets publish them; the images are generated here,
including the broken ones (corrupt bytes, truncated PNG/JPEG, too small, decompression bombs whose
headers declare huge sizes while the files stay a few hundred bytes).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"

# name -> (width, height) of a valid image; the format follows the extension
VALID_IMAGES = {
    "pmc_oa/images": {
        "PMC100_F1.jpg": (400, 300),
        "PMC101_F2.jpg": (320, 240),
        "PMC110_F3.jpg": (320, 240),
    },
    "pmc_case_report/figures": {
        "PMC200_F1.jpg": (300, 300),
        "PMC201_tall_a.jpg": (200, 600),
        "PMC201_tall_b.jpg": (300, 900),
        "PMC202_wide_a.png": (600, 200),
        "PMC202_wide_b.png": (900, 300),
        "PMC203_a.jpg": (400, 300),
        "PMC203_b.png": (200, 200),
        "PMC203_c.jpg": (300, 500),
        "PMC204_a.jpg": (320, 240),
        "PMC204_b.jpg": (240, 320),
        "PMC204_c.jpg": (256, 256),
        "PMC204_d.jpg": (500, 100),
        **{f"PMC205_{letter}.jpg": (64, 64) for letter in "abcde"},
        **{f"PMC206_{letter}.jpg": (64, 64) for letter in "abcdef"},
        "PMC209_a.jpg": (128, 128),
        "PMC210_F1.jpg": (128, 96),
        "PMC211_F1.jpg": (96, 128),
        "PMC212_F1.jpg": (64, 64),
    },
    "pmc_vqa/figures": {
        "PMC300_F1.jpg": (256, 256),
        "PMC301_F2.png": (300, 200),
        "PMC302_F1.jpg": (200, 240),
        "PMC304_F1.jpg": (128, 128),
        "PMC306_F1.jpg": (256, 200),
    },
}


def picture(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A deterministic RGB picture with structure (gradients), so JPEG has something to encode."""
    width, height = size
    gradient = Image.linear_gradient("L").resize((width, height))
    other = Image.radial_gradient("L").resize((width, height))
    shift = Image.new("L", (width, height), (seed * 37) % 256)
    return Image.merge("RGB", (gradient, other, shift))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height grey pixels; its data holds a few zero rows only."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")
    )


def encoded(image: Image.Image, suffix: str) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if suffix == ".png" else "JPEG", quality=90)
    return buffer.getvalue()


def make_images(root: Path) -> None:
    """Write every image the fixture sources name (valid and broken) under `root`."""
    for folder, images in VALID_IMAGES.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for number, (name, size) in enumerate(sorted(images.items())):
            picture(size, number).save(root / folder / name, quality=90)
    oa = root / "pmc_oa/images"
    (oa / "PMC103_F1.jpg").write_bytes(b"this is not an image at all, just text " * 10)
    png = encoded(picture((200, 200), 3), ".png")
    (oa / "PMC104_F1.png").write_bytes(png[: len(png) // 2])
    jpeg = encoded(picture((200, 200), 4), ".jpg")
    (oa / "PMC105_F1.jpg").write_bytes(jpeg[: len(jpeg) * 6 // 10])
    picture((16, 16)).save(oa / "PMC106_F1.png")
    (oa / "PMC107_F1.png").write_bytes(bomb_png(10_000, 10_000))  # over our limit, under Pillow's
    (oa / "PMC111_F1.png").write_bytes(bomb_png(60_000, 60_000))  # over Pillow's own bomb guard too
    (root / "pmc_case_report/figures/PMC209_b.jpg").write_bytes(
        b"\xff\xd8\xff\xe0 garbage" + b"\x00" * 50 + b"\xff\xd9"
    )
