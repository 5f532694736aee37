"""Resolve a local directory or hub id to loaded pretrained parts, with one clear error when unavailable.

On a machine with internet, hub ids download as usual; offline (or for a private path copied from a
released config), the user gets one message naming what was looked for and how to supply it locally.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from qilin_med_vl.errors import ModelNotAvailableError

T = TypeVar("T")


def describe_source(source: str | Path) -> str:
    path = Path(source)
    if path.exists():
        return f"local directory {path}"
    return f"{source!r} (not a local directory, so treated as a Hugging Face Hub id)"


def load_or_explain(what: str, source: str | Path, loader: Callable[[str], T]) -> T:
    """Call `loader(str(source))`; turn 'not found / cannot download' into ModelNotAvailableError."""
    try:
        return loader(str(source))
    except (OSError, ValueError) as error:
        if Path(source).is_dir():
            hint = f"the directory exists but does not hold a loadable {what}: {error}"
        else:
            hint = (
                "it could not be found locally or downloaded. Download it on a machine with internet, e.g. "
                f"`hf download {source} --local-dir DIR`, copy DIR here and pass DIR instead; "
                f"(underlying error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            )
        raise ModelNotAvailableError(
            f"cannot load the {what} from {describe_source(source)}: {hint}"
        ) from error
