"""DICOM images to 8-bit display arrays: Modality LUT, VOI LUT or window, MONOCHROME1, colour, frames.

Only the attributes in `DESCRIPTION_TAGS` (an allow-list of non-identifying attributes, each checked
against a strict pattern) ever leave this module as text; patient, staff, institution, date and UID
attributes are never read into messages, logs or descriptions. pydicom (the optional `dicom` extra) is
imported on first use, so raster-only installs work without it.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qilin_med_vl.imaging.picking import pick_index
from qilin_med_vl.imaging.reasons import (
    DICOM_NO_DECODER,
    DICOM_NO_IMAGE,
    DICOM_PIXELS_UNREADABLE,
    DICOM_SUPPORT_MISSING,
    DICOM_UNREADABLE,
    DICOM_UNSUPPORTED_COMPRESSION,
    IMAGE_TOO_LARGE,
    WINDOW_NOT_APPLICABLE,
    ImageRejected,
)
from qilin_med_vl.imaging.windows import Window, WindowChoice, percentile_window

logger = logging.getLogger(__name__)

DICOM_MAGIC_OFFSET = 128
DICOM_MAGIC = b"DICM"
# Groups a DICOM dataset written without preamble and file meta usually starts with.
_BARE_DATASET_GROUPS = (0x0002, 0x0008)
_EXPLICIT_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
    b"".split()
)

_CODE = re.compile(r"[A-Z0-9 _]{1,16}")  # DICOM CS (code string) values
_NUMBER = re.compile(r"[-+0-9.eE]{1,16}")  # DS/IS/US values

# The allow-list: DICOM keyword -> (description key, pattern every value must match).
# Nothing else is ever described.
DESCRIPTION_TAGS: dict[str, tuple[str, re.Pattern[str]]] = {
    "Modality": ("modality", _CODE),
    "BodyPartExamined": ("body_part", _CODE),
    "ViewPosition": ("view", _CODE),
    "ImageLaterality": ("laterality", _CODE),
    "Laterality": ("laterality", _CODE),
    "PatientPosition": ("patient_position", _CODE),
    "PhotometricInterpretation": ("photometric", _CODE),
    "PixelSpacing": ("pixel_spacing_mm", _NUMBER),
    "ImagerPixelSpacing": ("pixel_spacing_mm", _NUMBER),
    "SliceThickness": ("slice_thickness_mm", _NUMBER),
}

_GREY = ("MONOCHROME1", "MONOCHROME2")


@dataclass(frozen=True)
class DicomPicture:
    """A decoded DICOM picture: `pixels` uint8, (H, W) grey or (H, W, 3) RGB, and its safe facts."""

    pixels: np.ndarray
    facts: dict[str, str]


def looks_like_dicom(head: bytes) -> bool:
    """True for a DICOM file (preamble + 'DICM') or a plausible bare DICOM dataset (no preamble)."""
    if head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == DICOM_MAGIC:
        return True
    if len(head) < 8:
        return False
    for order in ("little", "big"):
        group = int.from_bytes(head[0:2], order)
        if group in _BARE_DATASET_GROUPS:
            # Explicit VR: two letters after the tag; implicit VR: a 4-byte length that fits the file.
            if head[4:6] in _EXPLICIT_VRS or int.from_bytes(head[4:8], order) < 1 << 24:
                return True
    return False


def read_dataset(source: Path | bytes, name: str, *, header_only: bool = False):
    """Parse a DICOM file or bytes with pydicom, or raise ImageRejected('dicom_unreadable')."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:
        raise ImageRejected(
            DICOM_SUPPORT_MISSING,
            f"{name}: DICOM input needs pydicom: pip install 'qilin-med-vl[dicom]'",
        ) from None

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        head = source[:132] if isinstance(source, bytes) else _read_head(source)
        bare = head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] != DICOM_MAGIC
        ds = pydicom.dcmread(stream, force=bare, stop_before_pixels=header_only)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as error:
        raise ImageRejected(
            DICOM_UNREADABLE, f"{name}: not a readable DICOM file ({type(error).__name__}: {error})"
        ) from error
    _record_transfer_syntax(ds)
    return ds


def _record_transfer_syntax(ds) -> None:
    """Give a dataset read without file meta the transfer syntax it was read with, so its pixels decode."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if "TransferSyntaxUID" in getattr(ds, "file_meta", {}):
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        return
    if not hasattr(ds, "file_meta"):
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(DICOM_MAGIC_OFFSET + 4)


def describe_dataset(ds) -> dict[str, str]:
    """The allow-listed, pattern-checked attributes of `ds` as description entries."""
    facts: dict[str, str] = {}
    for keyword, (key, pattern) in DESCRIPTION_TAGS.items():
        text = allowed_text(ds, keyword, pattern)
        if key in facts or text is None:
            continue
        if pattern is _NUMBER:
            numbers = [float(part) for part in text.split("x")]
            if all(number == 0 for number in numbers):
                continue  # a zero spacing or thickness means "unknown"
            text = "x".join(f"{number:.4g}" for number in numbers)
        facts[key] = text
    return facts


def allowed_text(ds, keyword: str, pattern: re.Pattern[str]) -> str | None:
    """The value of a text attribute (parts joined by 'x') if every part matches `pattern`, else None.

    Raw values are decoded here rather than by pydicom, whose validation warnings quote the value: a
    non-conforming file could carry a name in any attribute.
    """
    if keyword not in ds:
        return None
    value = ds.get_item(keyword).value
    if value is None:
        return None
    if isinstance(value, bytes):  # not yet converted: backslash-separated ASCII, space or NUL padded
        parts = value.decode("ascii", errors="replace").split("\\")
    elif isinstance(value, str | int | float):
        parts = [str(value)]
    else:
        parts = [str(item) for item in value]
    parts = [part.strip(" \0") for part in parts]
    if not parts or not all(part and pattern.fullmatch(part) for part in parts):
        return None
    if pattern is _NUMBER:
        try:
            [float(part) for part in parts]
        except ValueError:
            return None
    return "x".join(parts)


def frame_count(ds) -> int:
    """Number of frames in the pixel data (1 for a single-frame image)."""
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def decode_dicom(ds, name: str, *, window: WindowChoice, frame: int | None, max_pixels: int) -> DicomPicture:
    """Decode one frame of `ds` into display pixels: Modality LUT, VOI LUT or window, photometric rules."""
    if not any(keyword in ds for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageRejected(
            DICOM_NO_IMAGE,
            f"{name}: this DICOM object has no pixel data ({_sop_class_name(ds)}); "
            "if it should hold an image, the file is truncated or damaged",
        )
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * columns > max_pixels:
        raise ImageRejected(
            IMAGE_TOO_LARGE, f"{name}: {columns}x{rows} pixels is over the limit of {max_pixels}"
        )
    frames = frame_count(ds)
    index = pick_index(frame, frames, name, "frame")
    syntax = _transfer_syntax(ds)
    _require_decoder(syntax, name)
    photometric = allowed_text(ds, "PhotometricInterpretation", _CODE) or ""
    overrides = {}
    if not photometric and int(ds.get("SamplesPerPixel", 1) or 1) == 1:
        photometric = "MONOCHROME2"  # the attribute is required; one sample per pixel can only be grey
        overrides["photometric_interpretation"] = photometric
    if window.window is not None and photometric not in _GREY:
        raise ImageRejected(
            WINDOW_NOT_APPLICABLE,
            f"{name}: windows apply to greyscale images; this one is {photometric or 'of unknown colour'}. "
            "Leave the window unset (auto) for colour images.",
        )
    modality = allowed_text(ds, "Modality", _CODE)
    if window.preset is not None and modality != "CT":
        raise ImageRejected(
            WINDOW_NOT_APPLICABLE,
            f"{name}: the '{window.preset}' window is in Hounsfield units and applies to CT; this study's "
            f"modality is {modality or 'unknown'}. Use the automatic window, or an "
            "explicit 'centre,width' in this study's units.",
        )

    from pydicom.pixels import pixel_array

    try:
        raw = pixel_array(ds, index=index if frames > 1 else None, **overrides)
    except Exception as error:  # any decoder failure: corrupt, truncated or unsupported pixel data
        raise ImageRejected(
            DICOM_PIXELS_UNREADABLE,
            f"{name}: cannot decode the pixel data ({_syntax_text(syntax)}): {type(error).__name__}: {error}"
            + _other_decoders(syntax),
        ) from error

    facts = describe_dataset(ds)
    facts["transfer_syntax"] = _syntax_text(syntax)
    if frames > 1:
        facts["frame"] = str(index)
        facts["frames"] = str(frames)

    if photometric in _GREY:
        values = _modality_values(raw, ds, index)
        pixels, window_text = _apply_voi(values, ds, index, window)
        facts["window"] = window_text
        if photometric == "MONOCHROME1":
            pixels = 255 - pixels  # MONOCHROME1 shows the lowest value as white
            facts["display"] = "inverted (MONOCHROME1)"
    elif photometric == "PALETTE COLOR":
        pixels = _palette_rgb(raw, ds)
    else:
        pixels = _colour_to_uint8(raw, ds)  # RGB, and YBR_* which pydicom has converted to RGB
    logger.debug("%s: decoded DICOM %s", name, facts)
    return DicomPicture(pixels=pixels, facts=facts)


def _sop_class_name(ds) -> str:
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return str(uid.name) if uid is not None and uid.is_valid else "unknown object type"


def _transfer_syntax(ds):
    from pydicom.uid import ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return syntax if syntax is not None else ImplicitVRLittleEndian


def _syntax_text(syntax) -> str:
    return f"{syntax.name} {syntax}" if syntax.name != str(syntax) else str(syntax)


def _require_decoder(syntax, name: str) -> None:
    """Fail early, naming the transfer syntax and the packages to install, when no decoder can read it."""
    if not syntax.is_compressed:
        return
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ImageRejected(
            DICOM_UNSUPPORTED_COMPRESSION,
            f"{name}: pixel data compressed as {_syntax_text(syntax)} is not supported by pydicom",
        ) from None
    if not decoder.is_available:
        options = "; ".join(decoder.missing_dependencies) or "a pydicom pixel data plugin"
        raise ImageRejected(
            DICOM_NO_DECODER,
            f"{name}: pixel data is compressed as {_syntax_text(syntax)} and no decoder for it is installed. "
            f"Install one of: {options}",
        )


def _other_decoders(syntax) -> str:
    """A hint naming the decoders not installed here that also read `syntax` (e.g. 12-bit JPEG), or ''."""
    if not syntax.is_compressed:
        return ""
    from pydicom.pixels import get_decoder

    missing = get_decoder(syntax).missing_dependencies
    return (
        f". Decoders for this transfer syntax that are not installed: {'; '.join(missing)}" if missing else ""
    )


def _functional_group(ds, index: int, sequence: str):
    """The item of a per-frame (else shared) functional group `sequence` for frame `index`, or None."""
    for groups, position in (
        ("PerFrameFunctionalGroupsSequence", index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        items = ds.get(groups)
        if (
            items
            and position < len(items)
            and sequence in items[position]
            and len(items[position][sequence].value)
        ):
            return items[position][sequence].value[0]
    return None


def _modality_values(raw: np.ndarray, ds, index: int) -> np.ndarray:
    """Stored values -> modality values (e.g. Hounsfield units): Modality LUT, or rescale slope/intercept."""
    from pydicom.pixels import apply_modality_lut

    if "ModalityLUTSequence" in ds or "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return apply_modality_lut(raw, ds)
    transform = _functional_group(
        ds, index, "PixelValueTransformationSequence"
    )  # enhanced multi-frame objects
    if transform is not None and "RescaleSlope" in transform:
        return raw.astype(np.float64) * float(transform.RescaleSlope) + float(
            transform.get("RescaleIntercept", 0)
        )
    return raw


def _apply_voi(values: np.ndarray, ds, index: int, window: WindowChoice) -> tuple[np.ndarray, str]:
    """Modality values -> uint8 grey, with the requested window or the study's own VOI LUT / window."""
    if window.window is not None:
        return window.window.apply(values), window.describe()
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        from pydicom.pixels import apply_voi_lut

        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        grey = apply_voi_lut(values, ds, prefer_lut=True).astype(np.float64) * 255.0 / (2**bits - 1)
        return np.rint(np.clip(grey, 0, 255)).astype(np.uint8), "study VOI LUT"
    own = _study_window(ds, index)
    if own is not None:
        return own.apply(values), f"study window ({own.describe()})"
    auto = percentile_window(values)
    return auto.apply(values), f"auto percentiles ({auto.describe()})"


def _study_window(ds, index: int) -> Window | None:
    """The first Window Center/Width of the image (or of its frame's functional group), if valid."""
    holder = (
        ds
        if "WindowCenter" in ds and "WindowWidth" in ds
        else _functional_group(ds, index, "FrameVOILUTSequence")
    )
    if holder is None or "WindowCenter" not in holder or "WindowWidth" not in holder:
        return None
    centre, width = (_first(holder.WindowCenter), _first(holder.WindowWidth))
    if centre is None or width is None or width < 1:
        return None
    function = str(holder.get("VOILUTFunction", ds.get("VOILUTFunction", "LINEAR")) or "LINEAR").upper()
    return Window(centre=centre, width=width, function=function)


def _first(value) -> float | None:
    """The first of a multi-valued number (Window Center may hold several windows), or the number itself."""
    try:
        number = float(value if isinstance(value, str | bytes | int | float) else value[0])
    except (TypeError, ValueError, IndexError):
        return None
    return number if np.isfinite(number) else None


def _palette_rgb(raw: np.ndarray, ds) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    rgb = apply_color_lut(raw, ds).astype(np.float64) * 255.0 / (2**bits - 1)
    return np.rint(np.clip(rgb, 0, 255)).astype(np.uint8)


def _colour_to_uint8(raw: np.ndarray, ds) -> np.ndarray:
    if raw.dtype == np.uint8:
        return raw
    bits = int(ds.get("BitsStored", raw.dtype.itemsize * 8))
    return np.rint(np.clip(raw.astype(np.float64) * 255.0 / (2**bits - 1), 0, 255)).astype(np.uint8)
