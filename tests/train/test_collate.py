"""Batching: padded rows, the block-diagonal mask, packing that preserves the loss, and the packing plan."""

from __future__ import annotations

import copy

import pytest
import torch

from qilin_med_vl.train.collate import PackedCollator, PaddedCollator, block_diagonal_causal_mask, plan_packs
from qilin_med_vl.train.records import read_records
from qilin_med_vl.train.tokenize import IGNORE_INDEX, ConversationTokenizer
from tests.train.conftest import conversation_dataset, instruct_dataset


@pytest.fixture(scope="module")
def samples(tiny, data_dir):
    dataset = instruct_dataset(tiny[1], data_dir)
    # two image records of different lengths and one text-only record
    text_only = next(i for i in range(len(dataset)) if dataset.sample(i).image is None)
    lengths = dataset.lengths
    short = min(range(8), key=lambda i: lengths[i])
    long = max(range(8), key=lambda i: lengths[i])
    assert lengths[short] != lengths[long]
    return [dataset[i] for i in (long, text_only, short)]


def test_padded_batch(samples, tiny):
    pad = tiny[1].tokenizer.pad_token_id
    batch = PaddedCollator(pad)(samples)
    longest = max(len(s["input_ids"]) for s in samples)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (3, longest)
    assert batch["pixel_values"].shape == (2, 3, 64, 64)  # the text-only record brings no image
    for row, sample in enumerate(samples):
        length = len(sample["input_ids"])
        assert batch["attention_mask"][row].sum() == length
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][row, length:] == pad).all()


def test_block_diagonal_mask():
    segments = torch.tensor([[0, 0, 1, 1, 1, -1]])
    mask = block_diagonal_causal_mask(segments)[0, 0]
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)
    additive = block_diagonal_causal_mask(segments, torch.float32)[0, 0]
    assert torch.equal(additive == 0, expected)


def loss(model, batch) -> torch.Tensor:
    """Mean token loss over the whole batch (as Trainer does with num_items_in_batch)."""
    items = (batch["labels"] != IGNORE_INDEX).sum()
    return model(**batch, num_items_in_batch=items).loss


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_packed_loss_equals_unpacked_loss(samples, tiny, attn_implementation):
    model = copy.deepcopy(tiny[0]).eval()
    model.set_attn_implementation(attn_implementation)
    pad = tiny[1].tokenizer.pad_token_id
    with torch.no_grad():
        unpacked = loss(model, PaddedCollator(pad)(samples))
        packed_batch = PackedCollator(pad, attn_implementation)(
            [{"samples": samples[:2]}, {"samples": samples[2:]}]
        )
        assert packed_batch["attention_mask"].shape[:2] == (2, 1)
        packed = loss(model, packed_batch)
        # without the mask (restarting positions only), samples would see each other on CPU
        leaky = dict(packed_batch)
        leaky.pop("attention_mask")
        leaking = loss(model, leaky)
    assert abs(packed.item() - unpacked.item()) < 1e-4
    assert abs(leaking.item() - unpacked.item()) > 1e-3


def _full_logits_batch(batch: dict) -> dict:
    """The same batch asking for every position's logits, as the model computes them by default."""
    return {key: value for key, value in batch.items() if key not in ("logits_to_keep", "shift_labels")}


@pytest.mark.parametrize("packed", [False, True])
def test_kept_logits_give_the_full_logits_loss_and_gradients(samples, tiny, packed):
    model = copy.deepcopy(tiny[0]).train()
    pad = tiny[1].tokenizer.pad_token_id
    if packed:
        batch = PackedCollator(pad)([{"samples": samples[:2]}, {"samples": samples[2:]}])
    else:
        batch = PaddedCollator(pad)(samples)
    supervised = int((batch["labels"] != IGNORE_INDEX).sum())
    assert batch["logits_to_keep"].sum() == len(batch["shift_labels"]) == supervised
    gradients = []
    for inputs in (batch, _full_logits_batch(batch)):
        model.zero_grad()
        output = loss(model, inputs)
        output.backward()
        gradients.append((output.detach(), model.lm_head.weight.grad.clone()))
    (kept_loss, kept_grad), (full_loss, full_grad) = gradients
    assert abs(kept_loss.item() - full_loss.item()) < 1e-5
    assert torch.allclose(kept_grad, full_grad, atol=1e-6)
    assert kept_grad.abs().sum() > 0


def test_packed_rows_restart_positions_and_never_supervise_a_first_token(samples, tiny):
    batch = PackedCollator(tiny[1].tokenizer.pad_token_id)([{"samples": samples}])
    first = len(samples[0]["input_ids"])
    assert batch["position_ids"][0, first] == 0 and batch["position_ids"][0, first - 1] == first - 1
    assert batch["labels"][0, 0] == IGNORE_INDEX and batch["labels"][0, first] == IGNORE_INDEX


def test_flash_attention_gets_positions_not_a_mask(samples, tiny):
    batch = PackedCollator(tiny[1].tokenizer.pad_token_id, "flash_attention_2")([{"samples": samples}])
    assert "attention_mask" not in batch and "position_ids" in batch


def test_plan_packs_fills_rows_without_overflow():
    lengths = [50, 120, 30, 90, 200, 10, 60, 75, 5, 180]
    packs = plan_packs(lengths, max_length=200, seed=3)
    assert sorted(i for pack in packs for i in pack) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in pack) <= 200 for pack in packs)
    assert len(packs) == 5  # 820 tokens: 5 rows of 200 is the fewest possible
    assert packs == plan_packs(lengths, max_length=200, seed=3)


def test_dataset_items_are_the_tokenizer_output(tiny, data_dir):
    """Samples are stored compactly (image runs collapsed) and come back exactly as tokenized."""
    _, processor = tiny
    records = read_records([data_dir / "instruct.jsonl"])
    tokenizer = ConversationTokenizer(processor, "chat", 400)
    dataset = conversation_dataset(processor, [data_dir / "instruct.jsonl"], data_dir)
    assert len(dataset) == len(records)
    for index, record in enumerate(records):
        expected = tokenizer(record)
        item = dataset[index]
        assert item["input_ids"].tolist() == expected.input_ids and item["labels"].tolist() == expected.labels
        assert dataset.lengths[index] == len(expected.input_ids)
        assert (item["pixel_values"] is None) == (record.image is None)
    assert len(dataset.sample(0).input_ids) == dataset.lengths[0] - 63  # 64 image tokens held as one
