"""LoRA on the LLM in stage 2: the merged output is a plain HF-native checkpoint that reproduces the peft
model's logits; QLoRA's path stops with a clear reason where it cannot run (no CUDA)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from peft import PeftModel
from transformers import LlavaForConditionalGeneration

from qilin_med_vl.cli import main
from qilin_med_vl.train.collate import PaddedCollator
from tests.train.conftest import FAST, TINY_INSTRUCT, instruct_dataset, train
from tests.train.test_stages import changed, keys_of

PLAIN_LOGITS = textwrap.dedent(
    """
    import sys, torch
    from transformers import LlavaForConditionalGeneration
    model = LlavaForConditionalGeneration.from_pretrained(sys.argv[1]).eval()
    batch = torch.load(sys.argv[2])
    with torch.no_grad():
        torch.save(model(**batch).logits, sys.argv[3])
    assert not any(m.startswith("qilin_med_vl") for m in sys.modules)
    """
)


def batch_of(directory, data_dir, tiny):
    processor = tiny[1]
    dataset = instruct_dataset(processor, data_dir, count=3)
    batch = PaddedCollator(processor.tokenizer.pad_token_id)([dataset[i] for i in range(3)])
    batch.pop("labels")
    return batch


def test_lora_merge_gives_a_plain_checkpoint_with_the_peft_logits(stage1_dir, data_dir, tiny, tmp_path):
    out = train(
        TINY_INSTRUCT, tmp_path / "lora", f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}",
        "max_steps=2", "warmup_ratio=0", "learning_rate=1e-2", "lora.enabled=true", "lora.r=4", "lora.dropout=0",
    )  # fmt: skip
    # the merged checkpoint: projector and LLM weights moved (adapters folded in), vision did not
    assert changed(stage1_dir, out) <= keys_of(stage1_dir, "projector", "llm")
    assert keys_of(stage1_dir, "projector") <= changed(stage1_dir, out)
    assert any(name.endswith("q_proj.weight") for name in changed(stage1_dir, out))

    batch = batch_of(out, data_dir, tiny)
    base = LlavaForConditionalGeneration.from_pretrained(stage1_dir).eval()
    with torch.no_grad():
        before = base(**batch).logits
        peft_model = PeftModel.from_pretrained(base, out / "adapter").eval()
        expected = peft_model(**batch).logits
    assert (expected - before).abs().max() > 1e-3  # the adapters changed the model

    torch.save(batch, tmp_path / "batch.pt")
    subprocess.run(
        [sys.executable, "-c", PLAIN_LOGITS, str(out), str(tmp_path / "batch.pt"), str(tmp_path / "logits.pt")],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    merged = torch.load(tmp_path / "logits.pt")
    torch.testing.assert_close(merged, expected, atol=1e-4, rtol=1e-4)


def test_lora_only_in_stage_two(capsys, tmp_path):
    code = main(
        [
            "train",
            "--config",
            str(TINY_INSTRUCT),
            "stage=alignment",
            "lora.enabled=true",
            f"output_dir={tmp_path}",
        ]
    )
    assert code == 1 and "only trains in stage `instruction`" in capsys.readouterr().err


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="on a CUDA machine QLoRA can run; this checks the CPU refusal"
)
def test_qlora_without_cuda_is_refused_with_the_reason(stage1_dir, data_dir, capsys, tmp_path):
    code = main(["train", "--config", str(TINY_INSTRUCT), f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}",
                 "lora.enabled=true", "lora.bits=4", f"output_dir={tmp_path}", *FAST])  # fmt: skip
    assert code == 1 and "needs a CUDA GPU and bitsandbytes" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA (bitsandbytes 4-bit) needs CUDA; none here")
def test_qlora_runs_on_cuda(stage1_dir, data_dir, tmp_path):
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes")
    out = train(TINY_INSTRUCT, tmp_path / "q", f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}",
                "max_steps=2", "lora.enabled=true", "lora.bits=4", "lora.merge=false")  # fmt: skip
    assert (out / "adapter" / "adapter_config.json").is_file()
