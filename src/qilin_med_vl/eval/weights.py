"""A fingerprint of a checkpoint directory's weights, so run.json says exactly which weights answered."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")  # the file formats weights are saved in
_BLOCK = 1 << 20


def weight_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file() and path.suffix in WEIGHT_SUFFIXES)


def weights_sha256(directory: Path) -> str:
    """SHA-256 over every weight file's relative name and bytes, in name order."""
    digest = hashlib.sha256()
    for path in weight_files(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
    return digest.hexdigest()
