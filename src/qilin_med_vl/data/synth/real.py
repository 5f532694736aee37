"""Real medical pictures that ship with installed packages: the DICOM test files of `pydicom-data`.

Their ground truth is the modality only (no finding is known). They are read through the project's own
`load_study` (windowing, RGB conversion), shrunk so the longer side is at most `REAL_MAX_SIDE`, and
written as PMC-OA figures with a modality caption. Without pydicom and its data the world has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

REAL_XRAY = "real_xray"
REAL_CT = "real_ct"
REAL_MRI = "real_mri"
REAL_ULTRASOUND = "real_ultrasound"
REAL_MAX_SIDE = 512

# file name in pydicom's test data -> modality label; a fixed list so every install makes the same world
REAL_DICOM_FILES: tuple[tuple[str, str], ...] = (
    ("RG1_UNCR.dcm", REAL_XRAY),
    ("CT_small.dcm", REAL_CT),
    ("693_UNCR.dcm", REAL_CT),
    ("MR_small.dcm", REAL_MRI),
    ("MR2_UNCR.dcm", REAL_MRI),
    ("emri_small.dcm", REAL_MRI),
    ("MR-SIEMENS-DICOM-WithOverlays.dcm", REAL_MRI),
    ("US1_UNCR.dcm", REAL_ULTRASOUND),
    ("OBXXXX1A.dcm", REAL_ULTRASOUND),
)


@dataclass(frozen=True)
class RealPicture:
    file_name: str  # the pydicom test file
    modality: str  # one of the REAL_* labels


def available_real_pictures() -> list[RealPicture]:
    """The REAL_DICOM_FILES present on this machine, in list order (none without pydicom-data)."""
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return []
    found = []
    for file_name, modality in REAL_DICOM_FILES:
        try:
            path = get_testdata_file(file_name)
        except Exception:  # pydicom's data manager raises various errors when an optional file is absent
            path = None
        if path is not None:
            found.append(RealPicture(file_name, modality))
    return found


def load_real_picture(picture: RealPicture) -> Image.Image:
    """The picture as the project's image loader shows it, shrunk to at most REAL_MAX_SIDE pixels."""
    from pydicom.data import get_testdata_file

    from qilin_med_vl.imaging import load_study

    image = load_study(get_testdata_file(picture.file_name)).image.convert("RGB")
    image.thumbnail((REAL_MAX_SIDE, REAL_MAX_SIDE), Image.Resampling.LANCZOS)
    return image
