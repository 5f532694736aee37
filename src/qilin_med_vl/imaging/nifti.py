"""NIfTI-1/NIfTI-2 volumes (.nii, .nii.gz) to one 8-bit display slice: axis and slice choice, then a window.

Volumes are first turned to the closest RAS+ orientation, so axis 0 is sagittal, 1 coronal and 2 axial,
and each slice is rotated so that anterior (axial) or superior (sagittal, coronal) is at the top, with the
patient's left on the viewer's left. Free-text header fields (`descrip`, `db_name`, `intent_name`,
`aux_file`) are never read into descriptions or messages.
"""

from __future__ import annotations

import gzip
import io
import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qilin_med_vl.imaging.picking import pick_index
from qilin_med_vl.imaging.reasons import (
    AXIS_OUT_OF_RANGE,
    FRAME_OUT_OF_RANGE,
    IMAGE_TOO_LARGE,
    NIFTI_SUPPORT_MISSING,
    NIFTI_UNREADABLE,
    NIFTI_UNSUPPORTED,
    ImageRejected,
)
from qilin_med_vl.imaging.windows import Window, WindowChoice, percentile_window

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
NIFTI1_HEADER_BYTES = 348
NIFTI2_HEADER_BYTES = 540
MAX_NIFTI_BYTES = 2 * 1024**3  # larger volumes are refused rather than read into memory
AXIS_NAMES = ("sagittal", "coronal", "axial")


@dataclass(frozen=True)
class NiftiPicture:
    """One displayed slice: `pixels` uint8 (H, W), and its safe facts."""

    pixels: np.ndarray
    facts: dict[str, str]


def nifti_kind(head: bytes) -> str | None:
    """'n+1' / 'ni1' (NIfTI-1 single file / .hdr+.img pair), 'n+2' (NIfTI-2) from an uncompressed header."""
    for order in "<>":
        if (
            len(head) >= NIFTI1_HEADER_BYTES
            and struct.unpack(order + "i", head[:4])[0] == NIFTI1_HEADER_BYTES
        ):
            magic = head[344:348]
            if magic in (b"n+1\0", b"ni1\0"):
                return magic[:3].decode()
        if len(head) >= 12 and struct.unpack(order + "i", head[:4])[0] == NIFTI2_HEADER_BYTES:
            if head[4:8] in (b"n+2\0", b"ni2\0"):
                return head[4:7].decode()
    return None


def sniff_nifti(head: bytes, gunzip_head: bytes | None) -> str | None:
    """NIfTI kind of a file given its first bytes, and (for gzip files) its first decompressed bytes."""
    if head[:2] == GZIP_MAGIC:
        return nifti_kind(gunzip_head) if gunzip_head else None
    return nifti_kind(head)


def gunzip_head(data: bytes | Path, size: int = NIFTI2_HEADER_BYTES) -> bytes | None:
    """The first `size` decompressed bytes of a gzip file or bytes, or None when it does not decompress."""
    try:
        stream = io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb")
        with stream, gzip.GzipFile(fileobj=stream) as unzipped:
            return unzipped.read(size)
    except (OSError, EOFError, zlib.error):
        return None


def load_nifti(
    source: Path | bytes,
    name: str,
    *,
    window: WindowChoice,
    frame: int | None,
    slice_index: int | None,
    axis: int,
    max_pixels: int,
) -> NiftiPicture:
    """Read a NIfTI volume; return the chosen slice (of the chosen volume, for 4-D data) windowed to uint8."""
    image = _read_image(source, name)  # first: it says so clearly when nibabel is missing
    import nibabel

    if image.get_data_dtype().kind not in "iuf":
        raise ImageRejected(
            NIFTI_UNSUPPORTED, f"{name}: NIfTI data type {image.get_data_dtype()} is not a scalar intensity"
        )
    try:
        image = nibabel.as_closest_canonical(image)
    except (ValueError, nibabel.orientations.OrientationError):
        logger.warning("%s: NIfTI affine has no clear orientation; slicing in stored voxel order", name)
    shape = tuple(int(size) for size in image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) < 2 or len(shape) > 4:
        raise ImageRejected(
            NIFTI_UNSUPPORTED,
            f"{name}: a NIfTI image of shape {shape} is not 2-D, 3-D or 4-D (3-D over time)",
        )
    if axis not in (0, 1, 2) or (len(shape) == 2 and axis != 2):
        raise ImageRejected(
            AXIS_OUT_OF_RANGE,
            f"{name}: axis {axis} does not exist; use 0 (sagittal), 1 (coronal) or 2 (axial)",
        )
    volume_shape = shape[:3] + (1,) * (3 - len(shape[:3]))
    plane = [size for dim, size in enumerate(volume_shape) if dim != axis]
    if plane[0] * plane[1] > max_pixels:
        raise ImageRejected(
            IMAGE_TOO_LARGE,
            f"{name}: {plane[0]}x{plane[1]} pixels per slice is over the limit of {max_pixels}",
        )
    facts = {"volume_shape": "x".join(str(size) for size in shape)}
    index: list[int | slice] = [slice(None)] * 3
    slice_at = pick_index(slice_index, volume_shape[axis], name, "slice")
    index[axis] = slice_at
    facts.update(axis=f"{axis} ({AXIS_NAMES[axis]})", slice=str(slice_at), slices=str(volume_shape[axis]))
    if len(shape) == 4:
        volume_at = pick_index(frame, shape[3], name, "frame")
        index.append(volume_at)
        facts.update(frame=str(volume_at), frames=str(shape[3]))
    elif frame not in (None, 0):
        raise ImageRejected(
            FRAME_OUT_OF_RANGE, f"{name}: frame {frame} asked of a NIfTI image with one volume"
        )
    index_tuple = tuple(index[: len(image.shape)]) + (0,) * (len(image.shape) - len(index))
    try:
        # dataobj applies the header's scl_slope / scl_inter
        values = np.asarray(image.dataobj[index_tuple], dtype=np.float64).reshape(plane)  # (plane0, plane1)
    except (OSError, ValueError, EOFError, zlib.error) as error:
        raise ImageRejected(
            NIFTI_UNREADABLE, f"{name}: cannot read the NIfTI voxel data ({error})"
        ) from error
    spacing = [float(zoom) for zoom in image.header.get_zooms()[:3]]
    if all(zoom > 0 for zoom in spacing):
        facts["voxel_size_mm"] = "x".join(f"{zoom:.4g}" for zoom in spacing)
    pixels, window_text = _window(values, image.header, window)
    facts["window"] = window_text
    # (plane0, plane1) -> (H, W) = (plane1 reversed, plane0): anterior/superior up, left on the left.
    return NiftiPicture(pixels=np.ascontiguousarray(np.rot90(pixels)), facts=facts)


def _read_image(source: Path | bytes, name: str):
    """Parse header and voxels into a nibabel image; volumes over MAX_NIFTI_BYTES are refused unread."""
    try:
        import nibabel
    except ImportError:
        raise ImageRejected(
            NIFTI_SUPPORT_MISSING, f"{name}: NIfTI input needs nibabel: pip install 'qilin-med-vl[dicom]'"
        ) from None

    if isinstance(source, Path):
        data = source.read_bytes() if source.stat().st_size <= MAX_NIFTI_BYTES else None
        if data is None:
            raise ImageRejected(IMAGE_TOO_LARGE, f"{name}: file is over the limit of {MAX_NIFTI_BYTES} bytes")
    else:
        data = source
    compressed = data[:2] == GZIP_MAGIC
    head = gunzip_head(data) if compressed else data[:NIFTI2_HEADER_BYTES]
    kind = nifti_kind(head or b"")
    if kind is None:
        raise ImageRejected(NIFTI_UNREADABLE, f"{name}: not a NIfTI-1 or NIfTI-2 file")
    if kind in ("ni1", "ni2"):
        if isinstance(source, Path):
            try:
                return nibabel.load(source)
            except (OSError, ValueError, nibabel.filebasedimages.ImageFileError) as error:
                raise ImageRejected(
                    NIFTI_UNREADABLE, f"{name}: cannot read the NIfTI pair ({error})"
                ) from error
        raise ImageRejected(
            NIFTI_UNSUPPORTED,
            f"{name}: a NIfTI header without its image (.hdr/.img pair); give a single-file .nii or .nii.gz",
        )
    image_class = nibabel.Nifti1Image if kind == "n+1" else nibabel.Nifti2Image
    header_class = image_class.header_class
    try:
        header = header_class.from_fileobj(io.BytesIO(head))
        needed = int(header.get_data_offset()) + int(np.prod(header.get_data_shape(), dtype=np.int64)) * (
            header.get_data_dtype().itemsize
        )
    except (ValueError, OverflowError, nibabel.spatialimages.HeaderDataError) as error:
        raise ImageRejected(NIFTI_UNREADABLE, f"{name}: invalid NIfTI header ({error})") from error
    if needed > MAX_NIFTI_BYTES:
        raise ImageRejected(
            IMAGE_TOO_LARGE, f"{name}: the volume needs {needed} bytes, over the limit of {MAX_NIFTI_BYTES}"
        )
    if compressed:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
                data = unzipped.read(needed)
        except (OSError, EOFError, zlib.error) as error:
            raise ImageRejected(NIFTI_UNREADABLE, f"{name}: the gzip stream is corrupt ({error})") from error
    if len(data) < needed:
        raise ImageRejected(
            NIFTI_UNREADABLE, f"{name}: truncated NIfTI file: {len(data)} bytes, the header needs {needed}"
        )
    try:
        return image_class.from_bytes(data[:needed])
    except (
        ValueError,
        nibabel.spatialimages.HeaderDataError,
        nibabel.filebasedimages.ImageFileError,
    ) as error:
        raise ImageRejected(NIFTI_UNREADABLE, f"{name}: cannot read the NIfTI file ({error})") from error


def _window(values: np.ndarray, header, window: WindowChoice) -> tuple[np.ndarray, str]:
    """Apply the requested window, else the header's display range (cal_min..cal_max), else percentiles."""
    if window.window is not None:
        return window.window.apply(values), window.describe()
    low, high = float(header["cal_min"]), float(header["cal_max"])
    if np.isfinite(low) and np.isfinite(high) and high - low >= 1:
        own = Window(centre=(low + high) / 2.0, width=high - low, function="LINEAR_EXACT")
        return own.apply(values), f"header display range ({own.describe()})"
    auto = percentile_window(values)
    return auto.apply(values), f"auto percentiles ({auto.describe()})"
