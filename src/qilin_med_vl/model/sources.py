"""Resolve a local directory or hub id to loaded pretrained parts, with one clear error when unavailable.

On a machine with internet, hub ids download as usual; offline (or for a private path copied from a
released config), the user gets one message naming what was looked for and how to supply it locally.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from qilin_med_vl.errors import ModelNotAvailableError

T = TypeVar("T")

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name
RUNS_DIR = "runs"  # where the project's commands write by default: `runs/x` is always a local path


def is_hub_id(source: str | Path) -> bool:
    """Only a string shaped like `owner/name`, whose owner is not a local folder, is taken as a hub id."""
    text = str(source)
    if not HUB_ID.fullmatch(text):
        return False
    owner = text.split("/")[0]
    return owner != RUNS_DIR and not Path(owner).is_dir()


def describe_source(source: str | Path) -> str:
    path = Path(source)
    if path.exists():
        return f"local directory {path}"
    return f"{source!r} (not a local directory, so treated as a Hugging Face Hub id)"


def require_local_or_hub(what: str, source: str | Path) -> None:
    """Fail at once, with no hub request, for a local path that does not exist."""
    if not is_hub_id(source) and not Path(source).is_dir():
        kind = "a file, not a directory" if Path(source).exists() else "no such directory"
        raise ModelNotAvailableError(
            f"cannot load the {what} from {source}: {kind}. Give a checkpoint directory (e.g. one written by "
            "`qilin model create` or `qilin train`) or a hub id like owner/name"
        )


def load_or_explain(what: str, source: str | Path, loader: Callable[[str], T]) -> T:
    """Call `loader(str(source))`; turn 'not found / cannot download' into ModelNotAvailableError."""
    require_local_or_hub(what, source)
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
