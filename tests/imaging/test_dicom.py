"""load_study on the real DICOM studies of pydicom-data: pixels against hand-computed references."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import MPEG2MPML, HTJ2KLossless, JPEGExtended12Bit, JPEGLosslessSV1

from qilin_med_vl.imaging.reasons import ImageRejected
from qilin_med_vl.imaging.study import WINDOW_PRESETS, Study, load_study


def study_file(name: str) -> Path:
    """A pydicom / pydicom-data test file, which must already be on disk (nothing is downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not installed; run `make install` (pydicom-data)"
    return Path(path)


def linear_window(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window, written out independently of the project code."""
    low, high = centre - 0.5 - (width - 1) / 2, centre - 0.5 + (width - 1) / 2
    grey = np.where(
        values <= low,
        0.0,
        np.where(values > high, 255.0, ((values - (centre - 0.5)) / (width - 1) + 0.5) * 255.0),
    )
    return np.rint(grey).astype(np.uint8)


def grey_of(study: Study) -> np.ndarray:
    """The study's picture as (H, W) uint8, after checking the three RGB channels are equal."""
    pixels = np.asarray(study.image)
    assert study.image.mode == "RGB" and pixels.ndim == 3
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    return pixels[..., 0]


def test_the_studies_used_here_are_on_disk_offline():
    for name in (
        "RG1_UNCI.dcm",
        "RG1_J2KI.dcm",
        "693_UNCR.dcm",
        "693_J2KR.dcm",
        "MR_small.dcm",
        "US1_UNCR.dcm",
    ):
        assert study_file(name).stat().st_size > 0


def test_chest_xray_is_monochrome1_inverted_with_its_own_window():
    path = study_file("RG1_UNCI.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    study = load_study(path)
    reference = 255 - linear_window(
        ds.pixel_array.astype(np.float64), float(ds.WindowCenter), float(ds.WindowWidth)
    )
    np.testing.assert_array_equal(grey_of(study), reference)
    assert study.description["modality"] == "CR"
    assert study.description["body_part"] == "CHEST"
    assert study.description["display"] == "inverted (MONOCHROME1)"
    assert study.description["size"] == f"{ds.Columns}x{ds.Rows}"
    # MONOCHROME1: the lowest stored value shows brightest, the highest darkest.
    grey = grey_of(study)
    assert grey[np.unravel_index(np.argmin(ds.pixel_array), grey.shape)] == grey.max()
    assert grey[np.unravel_index(np.argmax(ds.pixel_array), grey.shape)] == grey.min()


def test_explicit_window_on_chest_xray_is_applied_then_inverted():
    path = study_file("RG1_UNCI.dcm")
    values = pydicom.dcmread(path).pixel_array.astype(np.float64)
    study = load_study(path, window=(12000, 8000))
    np.testing.assert_array_equal(grey_of(study), 255 - linear_window(values, 12000, 8000))
    assert study.description["window"] == "explicit (centre 12000, width 8000)"


def test_compressed_chest_xray_decodes_close_to_the_uncompressed_one():
    lossy = grey_of(load_study(study_file("RG1_J2KI.dcm"))).astype(int)
    original = grey_of(load_study(study_file("RG1_UNCI.dcm"))).astype(int)
    assert lossy.shape == original.shape
    assert np.abs(lossy - original).mean() < 2.0  # lossy JPEG 2000: close, not equal


@pytest.mark.parametrize("preset", ["lung", "bone", "mediastinum", "abdomen", "brain"])
def test_ct_presets_apply_to_hounsfield_units(preset):
    path = study_file("693_UNCR.dcm")
    ds = pydicom.dcmread(path)
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    window = WINDOW_PRESETS[preset]
    study = load_study(path, window=preset)
    np.testing.assert_array_equal(grey_of(study), linear_window(hounsfield, window.centre, window.width))
    assert study.description["window"].startswith(f"{preset} (centre ")


def test_ct_lung_window_shows_air_black_and_bone_white():
    study = load_study(study_file("693_UNCR.dcm"), window="lung")
    ds = pydicom.dcmread(study_file("693_UNCR.dcm"))
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    grey = grey_of(study)
    assert (grey[hounsfield <= -1400] == 0).all()  # below -600 - 1500/2
    assert (grey[hounsfield >= 200] == 255).all()  # above -600 + 1500/2


def test_lossless_compressed_ct_equals_uncompressed():
    lossless = load_study(study_file("693_J2KR.dcm"), window="bone")
    uncompressed = load_study(study_file("693_UNCR.dcm"), window="bone")
    np.testing.assert_array_equal(np.asarray(lossless.image), np.asarray(uncompressed.image))
    assert "JPEG 2000" in lossless.description["transfer_syntax"]


def test_ct_without_window_uses_percentiles_of_hounsfield_units():
    path = study_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert "WindowCenter" not in ds
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    low, high = np.percentile(hounsfield, [0.5, 99.5])
    study = load_study(path)
    np.testing.assert_array_equal(grey_of(study), linear_window(hounsfield, (low + high) / 2, high - low))
    assert study.description["window"].startswith("auto percentiles")


def test_mr_uses_its_window_centre_and_width():
    path = study_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    study = load_study(path)
    np.testing.assert_array_equal(
        grey_of(study),
        linear_window(ds.pixel_array.astype(np.float64), float(ds.WindowCenter), float(ds.WindowWidth)),
    )
    assert study.description["modality"] == "MR"
    assert study.description["window"] == "study window (centre 600, width 1600)"


def test_voi_lut_sequence_is_applied():
    path = study_file("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    item = ds.VOILUTSequence[0]
    entries, first_mapped, bits = (int(value) for value in item.LUTDescriptor)
    lut = np.asarray(item.LUTData, dtype=np.float64)
    looked_up = lut[np.clip(ds.pixel_array.astype(np.int64) - first_mapped, 0, entries - 1)]
    study = load_study(path)
    np.testing.assert_array_equal(grey_of(study), np.rint(looked_up * 255 / (2**bits - 1)).astype(np.uint8))
    assert study.description["window"] == "study VOI LUT"


def test_multiframe_defaults_to_the_middle_frame_and_honours_frame():
    path = study_file("emri_small.dcm")
    frames = pydicom.dcmread(path).pixel_array.astype(np.float64)  # (10, 64, 64)
    middle = load_study(path)
    assert (middle.description["frame"], middle.description["frames"]) == ("5", "10")
    first = load_study(path, frame=0, window=(200, 400))
    np.testing.assert_array_equal(grey_of(first), linear_window(frames[0], 200, 400))
    last = load_study(path, frame=9, window=(200, 400))
    np.testing.assert_array_equal(grey_of(last), linear_window(frames[9], 200, 400))
    with pytest.raises(ImageRejected) as raised:
        load_study(path, frame=10)
    assert raised.value.reason == "frame_out_of_range"
    assert "frames 0-9" in str(raised.value)


def test_enhanced_ct_uses_per_frame_rescale_and_window():
    path = study_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    per_frame = ds.PerFrameFunctionalGroupsSequence[0]
    transform = per_frame if "PixelValueTransformationSequence" in per_frame else shared
    transform = transform.PixelValueTransformationSequence[0]
    voi = (per_frame if "FrameVOILUTSequence" in per_frame else shared).FrameVOILUTSequence[0]
    values = ds.pixel_array[0] * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    study = load_study(path, frame=0)
    np.testing.assert_array_equal(
        grey_of(study), linear_window(values, float(voi.WindowCenter), float(voi.WindowWidth))
    )


def test_ultrasound_rgb_is_kept_as_is():
    path = study_file("US1_UNCR.dcm")
    study = load_study(path)
    np.testing.assert_array_equal(np.asarray(study.image), pydicom.dcmread(path).pixel_array)
    assert study.description["modality"] == "US"
    assert "window" not in study.description


def test_ultrasound_ybr_jpeg2000_equals_the_rgb_original():
    compressed = load_study(study_file("US1_J2KR.dcm"))
    np.testing.assert_array_equal(
        np.asarray(compressed.image), np.asarray(load_study(study_file("US1_UNCR.dcm")).image)
    )


def test_multiframe_ybr_jpeg_ultrasound_picks_middle_frame_in_rgb():
    path = study_file("color3d_jpeg_baseline.dcm")
    study = load_study(path)
    assert (study.description["frame"], study.description["frames"]) == ("60", "120")
    assert study.description["photometric"] == "YBR_FULL_422"
    np.testing.assert_array_equal(np.asarray(study.image), pixel_array(path, index=60))  # pydicom's RGB


def test_palette_colour_ultrasound_is_looked_up():
    path = study_file("OBXXXX1A.dcm")
    ds = pydicom.dcmread(path)
    bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    first = int(ds.RedPaletteColorLookupTableDescriptor[1])
    channels = []
    for colour in ("Red", "Green", "Blue"):
        lut = np.frombuffer(
            getattr(ds, f"{colour}PaletteColorLookupTableData"), dtype="<u2" if bits == 16 else "u1"
        )
        channels.append(lut[np.clip(ds.pixel_array.astype(np.int64) - first, 0, len(lut) - 1)])
    reference = np.rint(np.stack(channels, axis=-1) * 255.0 / (2**bits - 1)).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(load_study(path).image), reference)


def test_nuclear_medicine_whole_body_loads():
    study = load_study(study_file("JPEG2000_UNC.dcm"))
    assert study.description["modality"] == "NM"
    assert study.image.size == (256, 1024)
    assert len(np.unique(grey_of(study))) > 50


def test_bytes_input_equals_path_input():
    path = study_file("693_UNCR.dcm")
    from_path = load_study(path, window="lung")
    from_bytes = load_study(path.read_bytes(), window="lung")
    np.testing.assert_array_equal(np.asarray(from_bytes.image), np.asarray(from_path.image))
    assert from_bytes.description == from_path.description


def test_dataset_without_preamble_loads_like_the_file(tmp_path):
    path = study_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    bare = tmp_path / "bare"
    ds.preamble = None
    ds.file_meta = FileMetaDataset()  # no file meta, no preamble: the dataset alone
    ds.save_as(bare, enforce_file_format=False, implicit_vr=False, little_endian=True)
    head = bare.read_bytes()[:132]
    assert head[128:132] != b"DICM"
    np.testing.assert_array_equal(np.asarray(load_study(bare).image), np.asarray(load_study(path).image))


def test_series_folder_orders_slices_in_space_and_picks_the_middle(tmp_path):
    source = study_file("MR_small.dcm").parent / "dicomdirtests" / "98892003" / "MR700"
    folder = tmp_path / "series"
    shutil.copytree(source, folder)
    (folder / "notes.txt").write_text("not an image")
    datasets = {path: pydicom.dcmread(path) for path in folder.iterdir() if path.name != "notes.txt"}

    def along_normal(ds) -> float:
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
        return float(
            np.asarray(ds.ImagePositionPatient, dtype=float) @ np.cross(orientation[:3], orientation[3:])
        )

    ordered = sorted(datasets, key=lambda path: along_normal(datasets[path]))
    middle = load_study(folder)
    assert (middle.description["slice"], middle.description["slices"]) == ("3", "7")
    assert middle.description["files_without_image"] == "1"
    for index in (0, 6):
        np.testing.assert_array_equal(
            np.asarray(load_study(folder, slice_index=index).image),
            np.asarray(load_study(ordered[index]).image),
        )


def test_hounsfield_preset_on_a_radiograph_is_refused():
    with pytest.raises(ImageRejected) as raised:
        load_study(study_file("MR_small.dcm"), window="lung")
    assert raised.value.reason == "window_not_applicable"
    assert "Hounsfield" in str(raised.value) and "MR" in str(raised.value)


def test_window_on_colour_ultrasound_is_refused():
    with pytest.raises(ImageRejected) as raised:
        load_study(study_file("US1_UNCR.dcm"), window=(40, 400))
    assert raised.value.reason == "window_not_applicable"


def recompressed(tmp_path: Path, syntax) -> Path:
    """MR_small.dcm relabelled as compressed with `syntax`; the fragment is junk, never to be decoded."""
    ds = pydicom.dcmread(study_file("MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    path = tmp_path / "relabelled.dcm"
    ds.save_as(path)
    return path


def test_missing_decoder_names_the_transfer_syntax_and_packages(tmp_path):
    if get_decoder(HTJ2KLossless).is_available:
        pytest.skip("an HTJ2K decoder is installed here")
    with pytest.raises(ImageRejected) as raised:
        load_study(recompressed(tmp_path, HTJ2KLossless))
    assert raised.value.reason == "dicom_no_decoder"
    message = str(raised.value)
    assert "relabelled.dcm" in message and HTJ2KLossless.name in message and str(HTJ2KLossless) in message
    assert "pylibjpeg-openjpeg" in message


def test_compression_pydicom_cannot_decode_is_named(tmp_path):
    with pytest.raises(ImageRejected) as raised:
        load_study(recompressed(tmp_path, MPEG2MPML))
    assert raised.value.reason == "dicom_unsupported_compression"
    assert "MPEG2 Main Profile" in str(raised.value)


@pytest.mark.parametrize(
    "compressed, uncompressed",
    [
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS lossless (gdcm)
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),  # JPEG-LS lossless, multi-frame
        ("MR_small_RLE.dcm", "MR_small.dcm"),  # RLE lossless (pydicom itself)
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),  # JPEG 2000 lossless (pillow)
    ],
)
def test_lossless_compressed_studies_equal_their_uncompressed_originals(compressed, uncompressed):
    np.testing.assert_array_equal(
        np.asarray(load_study(study_file(compressed)).image),
        np.asarray(load_study(study_file(uncompressed)).image),
    )


def test_jpeg_lossless_process_14_decodes():
    path = study_file("bad_sequence.dcm")  # CT, JPEG Lossless SV1: the usual PACS compression
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    study = load_study(path, window="lung")
    np.testing.assert_array_equal(grey_of(study), linear_window(hounsfield, -600, 1500))


def test_twelve_bit_jpeg_without_capable_decoder_names_syntax_and_fix():
    path = study_file("JPGExtended.dcm")
    if get_decoder(JPEGExtended12Bit).missing_dependencies == []:
        pytest.skip("every 12-bit JPEG decoder is installed here")
    with pytest.raises(ImageRejected) as raised:
        load_study(path)
    assert raised.value.reason == "dicom_pixels_unreadable"
    message = str(raised.value)
    assert "JPEG Extended" in message and "12-bit" in message and "JPGExtended.dcm" in message
    assert "pylibjpeg-libjpeg" in message


def test_truncated_pixel_data_is_rejected_with_the_file_name():
    with pytest.raises(ImageRejected) as raised:
        load_study(study_file("MR_truncated.dcm"))
    assert raised.value.reason == "dicom_pixels_unreadable"
    assert "MR_truncated.dcm" in str(raised.value) and "less than expected" in str(raised.value)


def test_dicom_without_image_is_rejected_naming_what_it_is():
    with pytest.raises(ImageRejected) as raised:
        load_study(study_file("rtplan.dcm"))
    assert raised.value.reason == "dicom_no_image"
    assert "RT Plan Storage" in str(raised.value)


def test_corrupt_dicom_is_rejected():
    corrupt = bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + bytes(20)
    with pytest.raises(ImageRejected) as raised:
        load_study(corrupt, name="scan.dcm")
    assert raised.value.reason in ("dicom_unreadable", "dicom_no_image")
    assert str(raised.value).startswith("scan.dcm: ")


def test_missing_photometric_interpretation_on_one_sample_is_read_as_grey(tmp_path):
    ds = pydicom.dcmread(study_file("MR_small.dcm"))
    del ds.PhotometricInterpretation
    path = tmp_path / "no_photometric.dcm"
    ds.save_as(path)
    np.testing.assert_array_equal(
        np.asarray(load_study(path).image), np.asarray(load_study(study_file("MR_small.dcm")).image)
    )
