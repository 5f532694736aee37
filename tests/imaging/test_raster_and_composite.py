"""Image safety verdicts and the multi-image concatenation rule."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from qilin_med_vl.data.composite import HORIZONTAL, VERTICAL, choose_layout, concatenate, scaled_sizes
from qilin_med_vl.imaging.raster import check_size, open_image
from qilin_med_vl.imaging.reasons import ImageRejected
from tests.data.data_fixtures import bomb_png, encoded, picture


def reason_for(data: bytes, tmp_path, name: str, **limits) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageRejected) as caught:
        open_image(path, **limits)
    assert name in str(caught.value)  # the message names the file
    return caught.value.reason


def test_valid_images_decode_to_rgb(tmp_path):
    for suffix in (".png", ".jpg"):
        path = tmp_path / f"ok{suffix}"
        path.write_bytes(encoded(picture((50, 40)), suffix))
        image = open_image(path)
        assert image.mode == "RGB" and image.size == (50, 40)


def test_truncated_png_and_jpeg_are_reported_as_truncated(tmp_path):
    png = encoded(picture((200, 200), 1), ".png")
    jpeg = encoded(picture((200, 200), 2), ".jpg")
    assert reason_for(png[: len(png) // 2], tmp_path, "cut.png") == "image_truncated"
    assert reason_for(jpeg[: len(jpeg) * 6 // 10], tmp_path, "cut.jpg") == "image_truncated"
    assert reason_for(png[:30], tmp_path, "header_only.png") == "image_truncated"


def test_garbage_is_unreadable_not_truncated(tmp_path):
    assert reason_for(b"plain text, not an image" * 4, tmp_path, "text.jpg") == "image_unreadable"
    # starts and ends like a JPEG, so it is complete but corrupt
    assert (
        reason_for(b"\xff\xd8\xff\xe0" + b"\x00" * 40 + b"\xff\xd9", tmp_path, "bad.jpg")
        == "image_unreadable"
    )


def test_decompression_bombs_are_refused_from_the_header(tmp_path):
    small_bomb = bomb_png(10_000, 10_000)  # 1e8 pixels: over our default limit, under Pillow's guard
    huge_bomb = bomb_png(60_000, 60_000)  # 3.6e9 pixels: Pillow's own guard fires inside Image.open
    assert len(small_bomb) < 2_000 and len(huge_bomb) < 2_000
    assert reason_for(small_bomb, tmp_path, "bomb.png") == "image_too_large"
    assert reason_for(huge_bomb, tmp_path, "huge.png") == "image_too_large"
    assert (
        reason_for(encoded(picture((100, 100)), ".png"), tmp_path, "limit.png", max_pixels=9_999)
        == "image_too_large"
    )


def test_check_size_refuses_small_sides():
    check_size(picture((32, 300)), "ok.png", 32)
    with pytest.raises(ImageRejected) as caught:
        check_size(picture((31, 300)), "thin.png", 32)
    assert caught.value.reason == "image_too_small"


def test_tall_images_go_side_by_side_and_wide_images_are_stacked():
    tall = [(200, 600), (300, 900)]
    wide = [(600, 200), (900, 300)]
    assert choose_layout(tall) == HORIZONTAL
    assert choose_layout(wide) == VERTICAL
    # the rule: the smaller max(r, 1/r) of row ratio sum(w/h) and column ratio 1/sum(h/w)
    row, column = 200 / 600 + 300 / 900, 1 / (600 / 200 + 900 / 300)
    assert max(row, 1 / row) < max(column, 1 / column)
    # square images: a tie of 2 vs 2 goes to horizontal
    assert choose_layout([(100, 100), (100, 100)]) == HORIZONTAL
    # one very wide strip among squares: stacking is less extreme than a 7:1 row
    assert choose_layout([(500, 100), (100, 100), (100, 100)]) == VERTICAL


def test_scaling_goes_to_the_smallest_common_side():
    assert scaled_sizes([(200, 600), (300, 900)], HORIZONTAL) == [(200, 600), (200, 600)]
    assert scaled_sizes([(600, 200), (900, 300)], VERTICAL) == [(600, 200), (600, 200)]
    assert scaled_sizes([(400, 300), (100, 150)], HORIZONTAL) == [(200, 150), (100, 150)]


@pytest.mark.parametrize(
    ("sizes", "layout", "expected_size"),
    [
        ([(200, 600), (300, 900)], HORIZONTAL, (400, 600)),
        ([(600, 200), (900, 300)], VERTICAL, (600, 400)),
        ([(320, 240), (240, 320), (256, 256), (500, 100)], VERTICAL, (240, 180 + 320 + 240 + 48)),
    ],
)
def test_concatenate_places_images_in_order(sizes, layout, expected_size):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    images = [Image.new("RGB", size, colour) for size, colour in zip(sizes, colours, strict=False)]
    composite, chosen = concatenate(images)
    assert chosen == layout
    assert composite.size == expected_size
    offset = 0
    for size, colour in zip(scaled_sizes(sizes, layout), colours, strict=False):
        # the centre of each placed image has its colour: images are in order, none overlaps
        if layout == HORIZONTAL:
            centre = (offset + size[0] // 2, size[1] // 2)
            offset += size[0]
        else:
            centre = (size[0] // 2, offset + size[1] // 2)
            offset += size[1]
        assert composite.getpixel(centre) == colour


def test_open_image_accepts_file_objects():
    data = encoded(picture((40, 30)), ".png")
    assert open_image(io.BytesIO(data)).size == (40, 30)
    with pytest.raises(ImageRejected) as caught:
        open_image(io.BytesIO(data[:60]))
    assert caught.value.reason == "image_truncated"


def test_truncated_gif_is_reported_as_truncated(tmp_path):
    buffer = io.BytesIO()
    picture((120, 90)).convert("P").save(buffer, format="GIF")
    data = buffer.getvalue()
    assert reason_for(data[: len(data) // 2], tmp_path, "cut.gif") == "image_truncated"
    assert open_image(io.BytesIO(data)).size == (120, 90)
