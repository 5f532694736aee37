"""load_study on PNG/JPEG/TIFF/BMP, content sniffing, unusable input, and the window table and parser."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from qilin_med_vl.errors import DataError, QilinError
from qilin_med_vl.imaging.reasons import ImageRejected
from qilin_med_vl.imaging.study import WINDOW_PRESETS, load_study
from qilin_med_vl.imaging.windows import WINDOW_CHOICES, WINDOW_HELP, Window, parse_window, percentile_window


def picture() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("file_format", ["PNG", "TIFF", "BMP"])
def test_lossless_raster_formats_round_trip(tmp_path, file_format):
    original = picture()
    path = tmp_path / "picture.img"  # the kind comes from the content, not the extension
    original.save(path, format=file_format)
    for source in (path, path.read_bytes()):
        study = load_study(source)
        np.testing.assert_array_equal(np.asarray(study.image), np.asarray(original))
        assert study.description == {"format": file_format, "size": "40x30"}


def test_jpeg_and_greyscale_png_become_rgb(tmp_path):
    jpeg = io.BytesIO()
    picture().save(jpeg, format="JPEG", quality=95)
    study = load_study(jpeg.getvalue())
    assert study.image.mode == "RGB" and study.description["format"] == "JPEG"
    np.testing.assert_array_equal(np.asarray(study.image), np.asarray(Image.open(jpeg).convert("RGB")))

    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    path = tmp_path / "grey.png"
    grey.save(path)
    pixels = np.asarray(load_study(path).image)
    assert pixels.shape == (16, 16, 3)
    np.testing.assert_array_equal(pixels[..., 1], np.asarray(grey))


def test_windows_frames_and_slices_do_not_apply_to_raster_images(tmp_path):
    path = tmp_path / "picture.png"
    picture().save(path)
    for kwargs, reason in (
        ({"window": "lung"}, "window_not_applicable"),
        ({"frame": 2}, "frame_out_of_range"),
        ({"slice_index": 3}, "slice_out_of_range"),
    ):
        with pytest.raises(ImageRejected) as raised:
            load_study(path, **kwargs)
        assert raised.value.reason == reason
        assert "DICOM and NIfTI only" in str(raised.value)
    assert load_study(path, window="auto").image.size == (40, 30)


def test_unusable_input_is_refused_with_a_reason_and_the_name(tmp_path):
    with pytest.raises(ImageRejected) as raised:
        load_study(tmp_path / "absent.dcm")
    assert raised.value.reason == "image_missing" and "absent.dcm" in str(raised.value)

    with pytest.raises(ImageRejected) as raised:
        load_study(b"this is a text file, not an image" * 10, name="notes.txt")
    assert raised.value.reason == "image_unreadable" and str(raised.value).startswith("notes.txt: ")

    with pytest.raises(ImageRejected) as raised:
        load_study(b"")
    assert raised.value.reason == "image_unreadable" and "uploaded image" in str(raised.value)

    truncated = io.BytesIO()
    picture().save(truncated, format="PNG")
    with pytest.raises(ImageRejected) as raised:
        load_study(truncated.getvalue()[:200])
    assert raised.value.reason == "image_truncated"

    empty_folder = tmp_path / "folder"
    empty_folder.mkdir()
    with pytest.raises(ImageRejected) as raised:
        load_study(empty_folder)
    assert raised.value.reason == "dicom_series_empty"


def test_pixel_limit_applies_to_every_kind(tmp_path):
    path = tmp_path / "picture.png"
    picture().save(path)
    with pytest.raises(ImageRejected) as raised:
        load_study(path, max_pixels=1000)
    assert raised.value.reason == "image_too_large"
    from pydicom.data import get_testdata_file

    with pytest.raises(ImageRejected) as raised:
        load_study(get_testdata_file("MR_small.dcm", download=False), max_pixels=64 * 64 - 1)
    assert raised.value.reason == "image_too_large"


def test_errors_are_qilin_errors():
    assert issubclass(ImageRejected, QilinError)
    with pytest.raises(QilinError):
        load_study(b"\x00" * 10)


def test_window_choices_and_parser():
    assert WINDOW_CHOICES == ("lung", "mediastinum", "bone", "brain", "abdomen", "auto")
    assert parse_window(None).is_auto and parse_window("auto").is_auto and parse_window(" AUTO ").is_auto
    lung = parse_window("Lung")
    assert lung.window is WINDOW_PRESETS["lung"] and lung.preset == "lung"
    assert parse_window("-600,1500").window == Window(-600.0, 1500.0)
    assert parse_window((40, 400)).window == Window(40.0, 400.0)
    assert parse_window((40, 400)).describe() == "explicit (centre 40, width 400)"
    for bad in ("lungs", "40", "40,0", (40, -5), ("a", "b"), "40,nan"):
        with pytest.raises(DataError):
            parse_window(bad)


def test_window_option_for_a_command_line(tmp_path):
    import argparse

    from pydicom.data import get_testdata_file

    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=parse_window, default=None, help=WINDOW_HELP)
    assert all(name in WINDOW_HELP for name in WINDOW_CHOICES)
    ct = get_testdata_file("693_UNCR.dcm", download=False)
    for argv, expected in ((["--window", "lung"], "lung"), (["--window=-600,1500"], (-600, 1500))):
        chosen = parser.parse_args(argv).window
        np.testing.assert_array_equal(
            np.asarray(load_study(ct, window=chosen).image), np.asarray(load_study(ct, window=expected).image)
        )


def test_linear_window_matches_the_dicom_definition():
    window = Window(centre=40, width=400)
    low_edge, high_edge = 40 - 0.5 - 399 / 2, 40 - 0.5 + 399 / 2
    values = np.array([-1000, low_edge, low_edge + 1e-6, 39.5, high_edge, high_edge + 1e-6, 3000])
    grey = window.apply(values)
    assert grey[0] == 0 and grey[1] == 0 and grey[-1] == 255 and grey[-2] == 255
    assert grey[3] == 128  # the centre maps to mid-grey
    assert grey.dtype == np.uint8 and (np.diff(grey.astype(int)) >= 0).all()


def test_sigmoid_and_linear_exact_functions():
    values = np.array([-1e6, 40.0, 1e6])
    np.testing.assert_array_equal(Window(40, 400, "SIGMOID").apply(values), [0, 128, 255])
    np.testing.assert_array_equal(
        Window(0, 100, "LINEAR_EXACT").apply(np.array([-50.0, 0.0, 50.0])), [0, 128, 255]
    )


def test_percentile_window_ignores_a_few_outliers():
    values = np.concatenate([np.linspace(0, 100, 10_000), [1e6, -1e6]])
    window = percentile_window(values)
    assert 0 <= window.centre - window.width / 2 < 1 and 99 < window.centre + window.width / 2 <= 100
    assert percentile_window(np.full(10, 7.0)).width == 1.0
