"""A fingerprint of a checkpoint directory's weights, so run.json says exactly which weights answered."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")  # the file formats weights are saved in
_BLOCK = 1 << 20


def weight_files(directory: Path) -> list[Path]:
    """The weight files a checkpoint loads: those directly in its folder (sub-folders such as a training
    run's intermediate checkpoints are other models)."""
    return sorted(path for path in directory.iterdir() if path.is_file() and path.suffix in WEIGHT_SUFFIXES)


def weights_sha256(directory: Path) -> str:
    """SHA-256 over every weight file's name and bytes, in name order (reads them all once)."""
    digest = hashlib.sha256()
    for path in weight_files(directory):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
    return digest.hexdigest()
