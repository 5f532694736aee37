"""A folder holding one DICOM series (one file per slice): order the slices in space and pick one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qilin_med_vl.imaging.dicom import allowed_text, describe_dataset, looks_like_dicom, read_dataset
from qilin_med_vl.imaging.picking import pick_index
from qilin_med_vl.imaging.reasons import DICOM_SERIES_EMPTY, DICOM_SERIES_MIXED, ImageRejected

_HEAD_BYTES = 132
_SERIES_NUMBER = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class SeriesSlice:
    """The chosen slice's file and the facts about the series it came from."""

    path: Path
    facts: dict[str, str]


def pick_series_slice(folder: Path, slice_index: int | None, name: str) -> SeriesSlice:
    """Read the image headers in `folder`, order them along the slice normal, return the chosen one."""
    slices = []
    skipped = 0
    for path in sorted(child for child in folder.iterdir() if child.is_file()):
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
        if not looks_like_dicom(head):
            skipped += 1
            continue
        ds = read_dataset(path, f"{name}/{path.name}", header_only=True)
        if "Rows" not in ds:  # DICOMDIR, reports, structure sets: no image to show
            skipped += 1
            continue
        slices.append((path, ds))
    if not slices:
        raise ImageRejected(DICOM_SERIES_EMPTY, f"{name}: the folder holds no DICOM image files")
    series = {_raw(ds, "SeriesInstanceUID") for _, ds in slices}
    if len(series) > 1:
        # Series UIDs identify the examination: describe the series by number and modality only.
        labels = sorted(
            {
                f"number {allowed_text(ds, 'SeriesNumber', _SERIES_NUMBER) or '?'} "
                f"({describe_dataset(ds).get('modality', '?')})"
                for _, ds in slices
            }
        )
        raise ImageRejected(
            DICOM_SERIES_MIXED,
            f"{name}: the folder holds {len(series)} series ({', '.join(labels)}); "
            "give a folder with one series",
        )
    ordered = sorted(slices, key=lambda item: _position(item[1]))
    at = pick_index(slice_index, len(ordered), name, "slice")
    facts = {"slice": str(at), "slices": str(len(ordered))}
    if skipped:
        facts["files_without_image"] = str(skipped)
    return SeriesSlice(path=ordered[at][0], facts=facts)


def _raw(ds, keyword: str) -> bytes:
    """An attribute's stored bytes, compared without converting (and so without validation warnings)."""
    if keyword not in ds:
        return b""
    value = ds.get_item(keyword).value
    return value.rstrip(b" \0") if isinstance(value, bytes) else str(value).encode()


def _position(ds) -> tuple[float, float]:
    """Sort key: distance along the slice normal when the geometry is known, then the instance number."""
    instance = float(ds.get("InstanceNumber", 0) or 0)
    try:
        orientation = np.asarray([float(value) for value in ds.ImageOrientationPatient], dtype=np.float64)
        position = np.asarray([float(value) for value in ds.ImagePositionPatient], dtype=np.float64)
    except (AttributeError, TypeError, ValueError):
        return (0.0, instance)
    normal = np.cross(orientation[:3], orientation[3:])
    return (float(position @ normal), instance)
