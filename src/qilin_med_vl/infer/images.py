"""Images that arrive with a chat request: `data:` URLs (PNG/JPEG/..., DICOM, NIfTI), optionally remote
http(s) URLs, and files named on the command line, each within size and pixel limits.

Every image goes through `qilin_med_vl.imaging.study.load_study`, which recognises the format from the
content and returns a picture plus non-identifying facts only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.imaging.reasons import IMAGE_MISSING, IMAGE_TOO_LARGE, ImageRejected
from qilin_med_vl.infer.defaults import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS

REMOTE_TIMEOUT_S = 10.0
AUTO_WINDOW = "auto"
# Media types a data: URL may declare; the loader still checks the content itself.
ACCEPTED_MEDIA_TYPES = (
    "image/",
    "application/dicom",
    "application/x-nifti",
    "application/gzip",
    "application/octet-stream",
)


class RequestImageError(ImageRejected):
    """An image reference in a request (data: or http(s) URL) that cannot be used; `reason` is a short code."""


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    allow_remote: bool = False


@dataclass(frozen=True)
class StudyOptions:
    """How to turn a DICOM/NIfTI study into one picture (ignored for PNG/JPEG)."""

    window: str | None = None
    frame: int | None = None
    slice_index: int | None = None
    axis: int = 2


def window_choices() -> list[str]:
    from qilin_med_vl.imaging.study import WINDOW_PRESETS

    return [AUTO_WINDOW, *WINDOW_PRESETS]


def decode_data_url(url: str, max_bytes: int) -> bytes:
    """The bytes of a base64 `data:` URL whose media type we accept."""
    header, comma, payload = url.partition(",")
    if not comma or not header.startswith("data:"):
        raise RequestImageError(
            "bad_data_url", "image data URL must look like data:<media type>;base64,<data>"
        )
    media_type, *parameters = header[len("data:") :].split(";")
    media_type = media_type.strip().lower()
    if "base64" not in parameters:
        raise RequestImageError("bad_data_url", "image data URL must be base64-encoded (data:...;base64,...)")
    if not media_type.startswith(ACCEPTED_MEDIA_TYPES):
        raise RequestImageError(
            "unsupported_media_type",
            f"image media type {media_type or '(none)'!r} is not accepted; send image/png, image/jpeg, "
            "application/dicom or application/x-nifti",
        )
    if len(payload) > (max_bytes * 4) // 3 + 4:
        raise RequestImageError(IMAGE_TOO_LARGE, f"image is over the limit of {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestImageError("bad_data_url", "image data URL holds invalid base64") from None


def fetch_remote(url: str, limits: ImageLimits) -> bytes:
    """Download an http(s) image, refusing it unless remote images were enabled."""
    if not limits.allow_remote:
        raise RequestImageError(
            "remote_images_disabled",
            "remote image URLs are refused by this server; send the image as a data: URL "
            "(or start the server with --allow-remote-images)",
        )
    import httpx

    try:
        with httpx.stream("GET", url, timeout=REMOTE_TIMEOUT_S, follow_redirects=False) as response:
            if response.status_code != 200:
                raise RequestImageError(
                    "remote_fetch_failed", f"fetching {url} returned HTTP {response.status_code}"
                )
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limits.max_bytes:
                    raise RequestImageError(
                        IMAGE_TOO_LARGE, f"{url} is over the limit of {limits.max_bytes} bytes"
                    )
            return bytes(data)
    except httpx.HTTPError as error:
        raise RequestImageError(
            "remote_fetch_failed", f"fetching {url} failed ({type(error).__name__})"
        ) from None


def load_url_image(url: str, options: StudyOptions, limits: ImageLimits):
    """A `Study` from an `image_url` value (data: URL, or http(s) when allowed)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "data":
        data = decode_data_url(url, limits.max_bytes)
    elif scheme in ("http", "https"):
        data = fetch_remote(url, limits)
    else:
        raise RequestImageError("bad_image_url", "image_url must be a data: URL (or http(s) when enabled)")
    return load_image_source(data, options, limits.max_pixels)


def load_image_source(
    source: str | Path | bytes, options: StudyOptions, max_pixels: int, name: str | None = None
):
    """A `Study` from a path or bytes: PNG/JPEG/TIFF/BMP, DICOM or NIfTI; messages call it `name` if given."""
    from qilin_med_vl.imaging.study import load_study

    if isinstance(source, str | Path) and not Path(source).exists():
        raise ImageRejected(IMAGE_MISSING, f"{source}: no such file; check the path given to --image")
    window = None if options.window in (None, AUTO_WINDOW) else options.window
    return load_study(
        source,
        window=window,
        frame=options.frame,
        slice_index=options.slice_index,
        axis=options.axis,
        max_pixels=max_pixels,
        name=name,
    )
