"""Reading medical images for the builder, training and inference alike: one entry point, `load_study`.

PNG/JPEG/TIFF (`raster`), DICOM files and series folders (`dicom`, `dicom_series`), NIfTI volumes
(`nifti`), display windows (`windows`), and every reason an image is refused (`reasons`).
"""

from qilin_med_vl.imaging.raster import open_image
from qilin_med_vl.imaging.reasons import ImageRejected
from qilin_med_vl.imaging.study import Study, load_study
from qilin_med_vl.imaging.windows import WINDOW_PRESETS

__all__ = ["WINDOW_PRESETS", "ImageRejected", "Study", "load_study", "open_image"]
