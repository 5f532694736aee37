"""Patient-identifying DICOM attributes never reach a description, repr, log record or error message."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, HTJ2KLossless, generate_uid

from qilin_med_vl.imaging.dicom import DESCRIPTION_TAGS
from qilin_med_vl.imaging.reasons import ImageRejected
from qilin_med_vl.imaging.study import load_study

# Distinctive values that cannot occur by chance in any text the loader writes.
IDENTIFYING = {
    "PatientName": "Qilintest^Zhangsan",
    "PatientID": "QMV-PID-90210",
    "PatientBirthDate": "19470311",
    "PatientAddress": "88 Qilintest Road, Hangzhou",
    "InstitutionName": "Qilintest General Hospital",
    "InstitutionAddress": "1 Qilintest Avenue",
    "ReferringPhysicianName": "Drqilin^Lisi",
    "PerformingPhysicianName": "Drqilin^Wangwu",
    "OperatorsName": "Techqilin^Zhao",
    "AccessionNumber": "ACCQ771234",
    "StudyDate": "20240229",
    "StudyID": "STQ5531",
    "StudyDescription": "Qilintest chest for Zhangsan",
    "OtherPatientIDs": "QMV-ALT-44871",
}
UIDS = {
    "StudyInstanceUID": generate_uid(),
    "SeriesInstanceUID": generate_uid(),
    "SOPInstanceUID": generate_uid(),
}
# Fragments to look for: each value, and the parts of person names (they may be printed re-ordered).
NEEDLES = sorted(
    {value for value in IDENTIFYING.values()}
    | {part for value in IDENTIFYING.values() for part in value.split("^") if len(part) >= 5}
    | set(UIDS.values())
    | {"Zhangsan", "Qilintest"}
)
COMPUTED_KEYS = {
    "format",
    "size",
    "transfer_syntax",
    "window",
    "display",
    "frame",
    "frames",
    "slice",
    "slices",
}


def make_ct(path: Path, *, frames: int = 3, body_part: str = "CHEST", syntax=ExplicitVRLittleEndian) -> Path:
    """A small multi-frame CT (HU = stored - 1024) full of identifying attributes, written with pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UIDS["SOPInstanceUID"]
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    for keyword, value in {**IDENTIFYING, **UIDS}.items():
        setattr(ds, keyword, value)
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.BodyPartExamined = body_part
    ds.Rows, ds.Columns, ds.NumberOfFrames = 32, 48, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    stored = np.arange(frames * 32 * 48, dtype=np.uint16).reshape(frames, 32, 48) % 2048
    ds.PixelData = encapsulate([b"\xff\xd8\x00" * 10] * frames) if syntax.is_compressed else stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def assert_nothing_identifying(*texts: str) -> None:
    for text in texts:
        for needle in NEEDLES:
            assert needle not in text, f"identifying value {needle!r} leaked into: {text[:300]}"


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)  # every logger, every level
    return caplog


def test_identifying_attributes_never_reach_description_repr_or_logs(tmp_path, all_logs, recwarn):
    path = make_ct(tmp_path / "ct.dcm")
    for source in (path, path.read_bytes()):
        for window in (None, "lung", (40, 400)):
            study = load_study(source, window=window, frame=1)
            assert study.description["modality"] == "CT" and study.description["body_part"] == "CHEST"
            text = " ".join(f"{key}={value}" for key, value in study.description.items())
            warned = " ".join(str(warning.message) for warning in recwarn)
            assert_nothing_identifying(text, repr(study), str(study), study.summary(), all_logs.text, warned)
    assert all_logs.records, (
        "the loader logs at debug level; the check above must have looked at real records"
    )


def test_description_is_built_from_the_allow_list_only(tmp_path):
    study = load_study(make_ct(tmp_path / "ct.dcm"))
    allowed = {key for key, _pattern in DESCRIPTION_TAGS.values()} | COMPUTED_KEYS
    assert set(study.description) <= allowed
    assert all(isinstance(value, str) for value in study.description.values())


def test_free_text_in_an_allow_listed_attribute_is_not_described(tmp_path, all_logs, recwarn):
    # Body Part Examined is a code string; a file that smuggles a name into it must not be echoed,
    # not even by pydicom's warning about the invalid value.
    path = make_ct(tmp_path / "ct.dcm", body_part="Zhangsan Qilintest")
    recwarn.clear()
    all_logs.clear()  # writing the file warned; only what loading says matters here
    study = load_study(path)
    assert "body_part" not in study.description
    warned = " ".join(str(warning.message) for warning in recwarn)
    assert_nothing_identifying(repr(study), all_logs.text, warned)


@pytest.mark.parametrize(
    "break_it, reason",
    [
        ("frame", "frame_out_of_range"),
        ("truncate_pixels", "dicom_pixels_unreadable"),
        ("truncate_header", "dicom_no_image"),
        ("no_decoder", "dicom_no_decoder"),
        ("preset_on_mr", "window_not_applicable"),
    ],
)
def test_errors_for_an_identified_file_carry_no_identifying_value(
    tmp_path, all_logs, recwarn, break_it, reason
):
    path = make_ct(
        tmp_path / "ct.dcm", syntax=HTJ2KLossless if break_it == "no_decoder" else ExplicitVRLittleEndian
    )
    kwargs = {}
    if break_it == "frame":
        kwargs["frame"] = 7
    elif break_it == "truncate_pixels":
        path.write_bytes(path.read_bytes()[:-500])
    elif break_it == "truncate_header":
        raw = path.read_bytes()
        path.write_bytes(raw[: raw.index(b"Qilintest General") + 3])
    elif break_it == "no_decoder":
        if pydicom.pixels.get_decoder(HTJ2KLossless).is_available:
            pytest.skip("an HTJ2K decoder is installed here")
    elif break_it == "preset_on_mr":
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.save_as(path)
        kwargs["window"] = "lung"
    with pytest.raises(ImageRejected) as raised:
        load_study(path, **kwargs)
    assert raised.value.reason == reason
    chained = raised.value.__cause__
    warned = " ".join(str(warning.message) for warning in recwarn)
    assert_nothing_identifying(
        str(raised.value), repr(raised.value), str(chained or ""), all_logs.text, warned
    )
    assert str(path) in str(raised.value)  # the message still names the file


def test_real_studies_patient_names_stay_out_of_descriptions():
    for name in ("RG1_UNCI.dcm", "US1_UNCR.dcm", "693_UNCR.dcm", "CT_small.dcm"):
        path = get_testdata_file(name, download=False)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        secrets = [
            str(ds.PatientName),
            str(ds.PatientID),
            str(ds.get("InstitutionName", "")),
            ds.StudyInstanceUID,
        ]
        study = load_study(path)
        text = repr(study) + study.summary()
        for secret in filter(None, secrets):
            assert secret not in text, f"{name}: {secret!r} leaked"
