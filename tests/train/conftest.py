"""Shared fixtures: one tiny model directory, small synthetic datasets, and a stage-1 output (session-wide).

Runs go through `qilin train` in-process (`cli.main`) so the tests exercise what users run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qilin_med_vl.cli import main
from qilin_med_vl.model.checkpoint import create_tiny, save_checkpoint
from qilin_med_vl.train.dataset import ConversationDataset
from qilin_med_vl.train.token_cache import tokenized_rows
from qilin_med_vl.train.tokenize import ConversationTokenizer
from tests.train.synthetic import write_dataset

REPO = Path(__file__).resolve().parents[2]
TINY_ALIGN = REPO / "configs/train/tiny_align.yaml"
TINY_INSTRUCT = REPO / "configs/train/tiny_instruct.yaml"
# Small and fast: short sequences, few steps, no TensorBoard unless a test asks for it.
FAST = [
    "max_length=160",
    "per_device_train_batch_size=4",
    "logging_steps=1",
    "report_to=[]",
    "progress_bar=false",
    "device=cpu",
]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(model, processor) of the tiny preset, fresh per session (tests must not train it in place)."""
    return create_tiny()


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory, tiny):
    return save_checkpoint(*tiny, tmp_path_factory.mktemp("base") / "tiny")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_dataset(folder, "align", 16, seed=1)
    write_dataset(folder, "instruct", 16, seed=2, text_only=2)
    return folder


def conversation_dataset(processor, files: list[Path], image_folder: Path, **options) -> ConversationDataset:
    """Records tokenized in memory (no cache folder) with the chat template, max length 400."""
    tokenizer = ConversationTokenizer(processor, "chat", 400, **options)
    rows = tokenized_rows(files, image_folder, tokenizer, cache_dir=None).rows
    return ConversationDataset(
        rows, processor.image_processor, image_folder, tokenizer.image_token_id, tokenizer.num_image_tokens
    )


def instruct_dataset(processor, data_dir: Path, count: int | None = None) -> ConversationDataset:
    """The synthetic stage-2 records (the first `count`), tokenized with the chat template."""
    dataset = conversation_dataset(processor, [data_dir / "instruct.jsonl"], data_dir)
    return dataset if count is None else dataset.subset(list(range(count)))


def train(config: Path, out: Path, *overrides: str) -> Path:
    """Run `qilin train` in-process; return the output directory."""
    code = main(["train", "--config", str(config), f"output_dir={out}", *FAST, *overrides])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def stage1_dir(tmp_path_factory, base_dir, data_dir) -> Path:
    out = tmp_path_factory.mktemp("stage1") / "align"
    return train(
        TINY_ALIGN,
        out,
        f"model={base_dir}",
        f"data={data_dir / 'align.jsonl'}",
        "max_steps=4",
        "save_steps=2",
        "report_to=[tensorboard]",
    )


def losses(output_dir: Path) -> dict[int, float]:
    """step -> training loss, from the run's train_log.jsonl."""
    lines = (Path(output_dir) / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return {entry["step"]: entry["loss"] for entry in map(json.loads, lines) if "loss" in entry}
