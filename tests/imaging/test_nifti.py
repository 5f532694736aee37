"""load_study on NIfTI-1/2 volumes written here with nibabel: slice, axis, frame, windows, orientation."""

from __future__ import annotations

import gzip

import nibabel
import numpy as np
import pytest

from qilin_med_vl.imaging.reasons import ImageRejected
from qilin_med_vl.imaging.study import WINDOW_PRESETS, load_study

SHAPE = (20, 24, 16)  # x (left->right), y (posterior->anterior), z (inferior->superior)


def make_volume(seed: int = 0) -> np.ndarray:
    """A CT-like volume in HU: air around a water body with a bright bone bar, plus noise."""
    rng = np.random.default_rng(seed)
    volume = np.full(SHAPE, -1000.0)
    volume[4:16, 4:20, :] = 40.0
    volume[8:10, 6:18, 3:13] = 900.0
    return (volume + rng.normal(0, 5, SHAPE)).astype(np.float32)


def by_hand(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM LINEAR window written out independently of the project code."""
    grey = np.clip((values - (centre - 0.5)) / (width - 1) + 0.5, 0, 1) * 255
    return np.rint(grey).astype(np.uint8)


def shown(slice_2d: np.ndarray) -> np.ndarray:
    """How a RAS+ slice (axes: left->right, then posterior->anterior or inferior->superior) is shown."""
    return np.rot90(slice_2d)


def grey(study) -> np.ndarray:
    pixels = np.asarray(study.image)
    assert study.image.mode == "RGB" and (pixels[..., 0] == pixels[..., 2]).all()
    return pixels[..., 0]


@pytest.fixture
def ct_nifti(tmp_path):
    volume = make_volume()
    path = tmp_path / "ct.nii.gz"
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), path)
    return path, volume


def test_default_is_the_middle_axial_slice(ct_nifti):
    path, volume = ct_nifti
    study = load_study(path, window="bone")
    bone = WINDOW_PRESETS["bone"]
    np.testing.assert_array_equal(grey(study), shown(by_hand(volume[:, :, 8], bone.centre, bone.width)))
    assert study.description["format"] == "NIfTI-1"
    assert (study.description["slice"], study.description["slices"]) == ("8", "16")
    assert study.description["axis"] == "2 (axial)"
    assert study.description["size"] == "20x24"  # width = x, height = y


@pytest.mark.parametrize("axis, index", [(0, 3), (1, 20), (2, 0)])
def test_slice_and_axis_choice(ct_nifti, axis, index):
    path, volume = ct_nifti
    study = load_study(path, axis=axis, slice_index=index, window=(40, 400))
    np.testing.assert_array_equal(grey(study), shown(by_hand(np.take(volume, index, axis=axis), 40, 400)))


def test_anterior_is_up_and_left_is_left(tmp_path):
    volume = np.zeros(SHAPE, dtype=np.float32)
    volume[0, -1, :] = 1000.0  # the voxel column at patient's far left, most anterior
    path = tmp_path / "marker.nii"
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), path)
    pixels = grey(load_study(path, window=(500, 1000)))
    assert pixels[0, 0] == 255 and pixels.sum() == 255  # top-left corner only


def test_flipped_affine_is_reoriented_to_the_same_picture(tmp_path, ct_nifti):
    path, volume = ct_nifti
    flipped_affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped_affine[0, 3] = SHAPE[0] - 1
    flipped = tmp_path / "flipped.nii"
    nibabel.save(nibabel.Nifti1Image(volume[::-1].copy(), flipped_affine), flipped)
    np.testing.assert_array_equal(
        np.asarray(load_study(flipped, window="lung").image),
        np.asarray(load_study(path, window="lung").image),
    )


def test_scaled_integers_are_windowed_in_real_units(tmp_path):
    volume = make_volume()
    image = nibabel.Nifti1Image(np.rint(volume + 1024).astype(np.int16), np.eye(4))
    image.header.set_slope_inter(1.0, -1024.0)
    path = tmp_path / "scaled.nii"
    nibabel.save(image, path)
    study = load_study(path, window="mediastinum")
    mediastinum = WINDOW_PRESETS["mediastinum"]
    expected = by_hand(np.rint(volume + 1024)[:, :, 8] - 1024, mediastinum.centre, mediastinum.width)
    np.testing.assert_array_equal(grey(study), shown(expected))


def test_auto_window_uses_header_display_range_else_percentiles(tmp_path, ct_nifti):
    path, volume = ct_nifti
    values = volume[:, :, 8].astype(np.float64)
    low, high = np.percentile(values, [0.5, 99.5])
    np.testing.assert_array_equal(
        grey(load_study(path)), shown(by_hand(values, (low + high) / 2, high - low))
    )

    image = nibabel.Nifti1Image(volume, np.eye(4))
    image.header["cal_min"], image.header["cal_max"] = -200.0, 300.0
    ranged = tmp_path / "ranged.nii"
    nibabel.save(image, ranged)
    study = load_study(ranged)
    exact = np.rint(np.clip((values + 200.0) / 500.0, 0, 1) * 255).astype(np.uint8)  # LINEAR_EXACT
    np.testing.assert_array_equal(grey(study), shown(exact))
    assert study.description["window"].startswith("header display range")


def test_four_d_picks_a_volume(tmp_path):
    series = np.stack([make_volume(seed) for seed in range(5)], axis=-1)  # (x, y, z, t)
    path = tmp_path / "fmri.nii"
    nibabel.save(nibabel.Nifti1Image(series, np.eye(4)), path)
    middle = load_study(path, window=(0, 2000))
    assert (middle.description["frame"], middle.description["frames"]) == ("2", "5")
    np.testing.assert_array_equal(grey(middle), shown(by_hand(series[:, :, 8, 2], 0, 2000)))
    first = load_study(path, window=(0, 2000), frame=0, slice_index=1)
    np.testing.assert_array_equal(grey(first), shown(by_hand(series[:, :, 1, 0], 0, 2000)))


def test_nifti2_and_bytes_input(tmp_path, ct_nifti):
    path, volume = ct_nifti
    nifti2 = tmp_path / "ct2.nii"
    nibabel.save(nibabel.Nifti2Image(volume, np.eye(4)), nifti2)
    from_nifti2 = load_study(nifti2, window="lung")
    assert from_nifti2.description["format"] == "NIfTI-2"
    from_path = load_study(path, window="lung")
    from_bytes = load_study(path.read_bytes(), window="lung")
    for other in (from_nifti2, from_bytes):
        np.testing.assert_array_equal(np.asarray(other.image), np.asarray(from_path.image))
    assert from_bytes.description == from_path.description


def test_uncompressed_bytes_and_gzip_content_with_any_name(tmp_path, ct_nifti):
    path, _volume = ct_nifti
    raw = gzip.decompress(path.read_bytes())
    renamed = tmp_path / "upload.bin"  # kind comes from the content, not the name
    renamed.write_bytes(path.read_bytes())
    reference = np.asarray(load_study(path).image)
    np.testing.assert_array_equal(np.asarray(load_study(raw).image), reference)
    np.testing.assert_array_equal(np.asarray(load_study(renamed).image), reference)


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"slice_index": 16}, "slice_out_of_range"),
        ({"axis": 3}, "axis_out_of_range"),
        ({"frame": 2}, "frame_out_of_range"),
        ({"slice_index": -1}, "slice_out_of_range"),
    ],
)
def test_out_of_range_choices_are_refused(ct_nifti, kwargs, reason):
    path, _volume = ct_nifti
    with pytest.raises(ImageRejected) as raised:
        load_study(path, **kwargs)
    assert raised.value.reason == reason
    assert str(path) in str(raised.value)


def test_truncated_volume_is_refused(tmp_path, ct_nifti):
    path, _volume = ct_nifti
    raw = gzip.decompress(path.read_bytes())
    for name, data in (("cut.nii", raw[:-100]), ("cut.nii.gz", gzip.compress(raw)[:-300])):
        broken = tmp_path / name
        broken.write_bytes(data)
        with pytest.raises(ImageRejected) as raised:
            load_study(broken)
        assert raised.value.reason == "nifti_unreadable", name
        assert name in str(raised.value)


def test_two_d_image_is_shown_whole(tmp_path):
    plane = make_volume()[:, :, 5]
    path = tmp_path / "plane.nii"
    nibabel.save(nibabel.Nifti1Image(plane, np.eye(4)), path)
    np.testing.assert_array_equal(grey(load_study(path, window=(0, 1000))), shown(by_hand(plane, 0, 1000)))
    with pytest.raises(ImageRejected) as raised:
        load_study(path, axis=0)
    assert raised.value.reason == "axis_out_of_range"
