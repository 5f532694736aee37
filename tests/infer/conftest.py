"""Shared fixtures for the inference tests: one tiny checkpoint and one Engine per test session."""

from __future__ import annotations

import pytest

from .infer_helpers import draw_picture


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    from qilin_med_vl.model.checkpoint import create_tiny, save_checkpoint

    model, processor = create_tiny()
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("ckpt") / "qilin-tiny")


@pytest.fixture(scope="session")
def engine(tiny_checkpoint):
    from qilin_med_vl.infer.engine import Engine

    return Engine.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="session")
def png_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "scan.png"
    draw_picture(1).save(path)
    return path
