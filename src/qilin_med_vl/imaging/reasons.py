"""Every reason an image can be refused, as named codes, and the exception that carries one.

The codes are short, stable strings: the dataset builder records them in its manifest and drop logs,
training counts them in its data summary, and the API and web page show them beside the message.
"""

from __future__ import annotations

from qilin_med_vl.errors import DataError

# any image
IMAGE_MISSING = "image_missing"  # no such file or folder
IMAGE_UNREADABLE = "image_unreadable"  # the bytes do not decode as any supported format
IMAGE_TRUNCATED = "image_truncated"  # a PNG/JPEG/GIF whose end marker is missing
IMAGE_TOO_SMALL = "image_too_small"  # a side under the minimum
IMAGE_TOO_LARGE = "image_too_large"  # pixels or bytes over the limit (decompression-bomb guard)
WINDOW_NOT_APPLICABLE = "window_not_applicable"  # a window asked of a photo or an RGB image
SLICE_OUT_OF_RANGE = "slice_out_of_range"
FRAME_OUT_OF_RANGE = "frame_out_of_range"
AXIS_OUT_OF_RANGE = "axis_out_of_range"

# DICOM
DICOM_SUPPORT_MISSING = "dicom_support_missing"  # pydicom is not installed
DICOM_UNREADABLE = "dicom_unreadable"
DICOM_NO_IMAGE = "dicom_no_image"  # a DICOM object without pixel data (a report, a structured set)
DICOM_PIXELS_UNREADABLE = "dicom_pixels_unreadable"
DICOM_UNSUPPORTED_COMPRESSION = "dicom_unsupported_compression"
DICOM_NO_DECODER = "dicom_no_decoder"  # the transfer syntax needs a decoder package that is not installed
DICOM_SERIES_EMPTY = "dicom_series_empty"
DICOM_SERIES_MIXED = "dicom_series_mixed"

# NIfTI
NIFTI_SUPPORT_MISSING = "nifti_support_missing"  # nibabel is not installed
NIFTI_UNREADABLE = "nifti_unreadable"
NIFTI_UNSUPPORTED = "nifti_unsupported"


class ImageRejected(DataError):
    """An image that cannot be used; `reason` is one of the codes above."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
