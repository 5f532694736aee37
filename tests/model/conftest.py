"""Tiny checkpoints shared by the model tests (built once per session: a few seconds each)."""

import pytest

from qilin_med_vl.model.checkpoint import create_tiny, save_checkpoint


@pytest.fixture(scope="session", params=["mlp2x_gelu", "linear"])
def tiny_checkpoint(request, tmp_path_factory):
    """(directory, in-memory model, processor) of the tiny preset for each projector type."""
    model, processor = create_tiny(projector=request.param, seed=0)
    directory = save_checkpoint(model, processor, tmp_path_factory.mktemp(f"tiny-{request.param}"))
    return directory, model, processor
