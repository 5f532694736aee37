"""Stand-in for the medical study loader (PNG/JPEG/TIFF/BMP only) until the DICOM/NIfTI loader lands.

Same interface as the full loader: `load_study(source, ...) -> Study` and `WINDOW_PRESETS`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from qilin_med_vl.data.images import DEFAULT_MAX_PIXELS, open_image

# name -> (window centre, window width) in Hounsfield units
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
}


@dataclass
class Study:
    image: Image.Image
    description: dict = field(default_factory=dict)


def load_study(
    source: str | Path | bytes,
    *,
    window=None,
    frame=None,
    slice_index=None,
    axis: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Study:
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    image = open_image(stream, max_pixels=max_pixels)
    return Study(image=image, description={"format": "raster", "size": list(image.size)})
