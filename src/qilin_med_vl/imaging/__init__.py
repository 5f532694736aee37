"""Reading medical images for the builder, training and inference alike: one entry point, `load_study`.

PNG/JPEG/TIFF (`raster`), DICOM files and series folders (`dicom`, `dicom_series`), NIfTI volumes
(`nifti`), display windows (`windows`), and every reason an image is refused (`reasons`).
"""

from qilin_med_vl.lazy import lazy_exports

# loaded on first use: the builder's image workers need `raster` alone, not numpy and the volume readers
_EXPORTS = {
    "WINDOW_PRESETS": "windows",
    "ImageRejected": "reasons",
    "Study": "study",
    "load_study": "study",
    "open_image": "raster",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
