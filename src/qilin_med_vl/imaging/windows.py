"""Intensity windows that turn scanner values (e.g. CT Hounsfield units) into 8-bit display grey levels.

One table of CT presets (`WINDOW_PRESETS`), explicit (centre, width) windows, and the DICOM VOI window
functions (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID). A window of `None` or "auto" means: use the
study's own display window when it has one, else the `AUTO_PERCENTILES` of the image's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from qilin_med_vl.errors import DataError


@dataclass(frozen=True)
class Window:
    """Values `centre ± width/2` map onto black..white; `function` is the DICOM VOI LUT Function."""

    centre: float
    width: float
    function: str = "LINEAR"

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Map values (any shape, any numeric dtype) onto uint8 grey levels of the same shape."""
        x = values.astype(np.float64)
        c, w = float(self.centre), float(self.width)
        if self.function == "SIGMOID":
            # clipped exponent: far outside the window exp() would overflow; the grey level is 0 or 1 there
            grey = 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / w, -60.0, 60.0)))
        elif self.function == "LINEAR_EXACT":
            grey = (x - c) / w + 0.5
        else:
            # DICOM's LINEAR function is defined on integer steps, hence the 0.5 and width - 1 offsets;
            # a width of 1 is a hard threshold.
            grey = np.where(x > c - 0.5, 1.0, 0.0) if w <= 1 else (x - (c - 0.5)) / (w - 1) + 0.5
        return np.rint(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8)

    def describe(self) -> str:
        """`centre C, width W` with short numbers (and the function when it is not LINEAR)."""
        text = f"centre {_short(self.centre)}, width {_short(self.width)}"
        return text if self.function == "LINEAR" else f"{text}, {self.function.lower()}"


# Standard CT windows in Hounsfield units, as tabulated by Radiopaedia, "Windowing (CT)"
# (https://radiopaedia.org/articles/windowing-ct): chest lungs W1500 L-600, mediastinum W350 L50,
# bone W1800 L400, brain W80 L40, abdomen soft tissues W400 L50.
WINDOW_PRESETS: MappingProxyType[str, Window] = MappingProxyType(
    {
        "lung": Window(centre=-600, width=1500),
        "mediastinum": Window(centre=50, width=350),
        "bone": Window(centre=400, width=1800),
        "brain": Window(centre=40, width=80),
        "abdomen": Window(centre=50, width=400),
    }
)
AUTO_WINDOW = "auto"
WINDOW_CHOICES: tuple[str, ...] = (*WINDOW_PRESETS, AUTO_WINDOW)
# Percentiles used when a study carries no window of its own: robust to a few hot or dead pixels.
AUTO_PERCENTILES = (0.5, 99.5)

# Help text for a `--window` option, the one place that lists what `parse_window` accepts.
WINDOW_HELP = (
    f"display window for DICOM and NIfTI: {AUTO_WINDOW} (the study's own window, else its "
    f"{AUTO_PERCENTILES[0]}-{AUTO_PERCENTILES[1]} percentiles), a CT preset in Hounsfield units "
    f"({', '.join(f'{name} {w.centre:g},{w.width:g}' for name, w in WINDOW_PRESETS.items())}), "
    "or centre,width in the study's own units (e.g. -600,1500)"
)


@dataclass(frozen=True)
class WindowChoice:
    """A parsed window request: `preset` names a WINDOW_PRESETS entry; `window` None means automatic."""

    window: Window | None
    preset: str | None = None

    @property
    def is_auto(self) -> bool:
        return self.window is None

    def describe(self) -> str:
        if self.window is None:
            return AUTO_WINDOW
        return (
            f"{self.preset} ({self.window.describe()})"
            if self.preset
            else f"explicit ({self.window.describe()})"
        )


WindowRequest = str | tuple[float, float] | WindowChoice | None


def parse_window(request: WindowRequest) -> WindowChoice:
    """Accept None/"auto", a preset name, a (centre, width) pair, or the text "centre,width" (CLI form).

    Also usable as an argparse `type=`: its result is accepted by `load_study(window=...)` as it is.
    """
    if isinstance(request, WindowChoice):
        return request
    if request is None:
        return WindowChoice(None)
    if isinstance(request, str):
        text = request.strip().lower()
        if text == AUTO_WINDOW:
            return WindowChoice(None)
        if text in WINDOW_PRESETS:
            return WindowChoice(WINDOW_PRESETS[text], preset=text)
        parts = text.split(",")
        if len(parts) == 2:
            try:
                return _explicit(float(parts[0]), float(parts[1]))
            except ValueError:
                pass
        raise DataError(
            f"unknown window {request!r}: use one of {', '.join(WINDOW_CHOICES)}, or 'centre,width' "
            "(e.g. '-600,1500')"
        )
    try:
        centre, width = (float(value) for value in request)
    except (TypeError, ValueError):
        raise DataError(f"window {request!r} is not a (centre, width) pair of numbers") from None
    return _explicit(centre, width)


def _explicit(centre: float, width: float) -> WindowChoice:
    if not (np.isfinite(centre) and np.isfinite(width)) or width < 1:
        raise DataError(f"window centre {centre}, width {width}: the width must be a number of at least 1")
    return WindowChoice(Window(centre=centre, width=width))


def percentile_window(values: np.ndarray) -> Window:
    """A window spanning the AUTO_PERCENTILES of `values` (a minimum width of 1 keeps flat images defined)."""
    finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    if finite.size == 0:
        return Window(centre=0.0, width=1.0)
    low, high = np.percentile(finite, AUTO_PERCENTILES)
    return Window(centre=(low + high) / 2.0, width=max(float(high - low), 1.0))


def _short(value: float) -> str:
    return f"{value:.6g}"
