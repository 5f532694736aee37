"""The CLI end to end: stage 1 then stage 2 on the tiny model, outputs that plain transformers loads."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from PIL import Image

from qilin_med_vl.cli import main
from tests.train.conftest import REPO, TINY_INSTRUCT, losses, train

PLAIN_LOAD = textwrap.dedent(
    """
    import sys, json
    import torch
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration
    model = LlavaForConditionalGeneration.from_pretrained(sys.argv[1]).eval()
    processor = AutoProcessor.from_pretrained(sys.argv[1])
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "这是什么检查？"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=[Image.open(sys.argv[2])], text=prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    print(json.dumps({"new_tokens": out.shape[1] - inputs["input_ids"].shape[1],
                      "project_imported": any(m.startswith("qilin_med_vl") for m in sys.modules)}))
    """
)


def load_in_plain_transformers(directory, image) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_LOAD, str(directory), str(image)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def stage2_dir(stage1_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage2") / "instruct"
    return train(
        TINY_INSTRUCT,
        out,
        f"model={stage1_dir}",
        f"data={data_dir / 'instruct.jsonl'}",
        "max_steps=3",
        "packing=true",
    )


def test_stage1_then_stage2_outputs(stage1_dir, stage2_dir, data_dir):
    for directory, stage, model in (
        (stage1_dir, "alignment", None),
        (stage2_dir, "instruction", str(stage1_dir)),
    ):
        config = yaml.safe_load((directory / "train_config.yaml").read_text(encoding="utf-8"))
        assert config["stage"] == stage
        if model:
            assert config["model"] == model  # stage 2 starts from stage 1's output directory
        for name in (
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "processor_config.json",
            "loss_curve.png",
        ):
            assert (directory / name).is_file(), name
        assert Image.open(directory / "loss_curve.png").format == "PNG"
        log = [json.loads(line) for line in (directory / "train_log.jsonl").read_text().splitlines()]
        steps = [entry for entry in log if "loss" in entry]
        assert [entry["step"] for entry in steps] == list(range(1, len(steps) + 1))
        assert all(entry["tokens_per_second"] > 0 and "learning_rate" in entry for entry in steps)
    summary = json.loads((stage2_dir / "data_summary.json").read_text())
    assert summary["records"] == 18 and summary["kept"] == 18 and summary["dropped"] == 0
    assert list((stage1_dir / "runs").rglob("events.out.tfevents.*"))  # TensorBoard


@pytest.mark.slow
def test_final_dirs_load_in_plain_transformers_and_generate(stage1_dir, stage2_dir, data_dir):
    image = next((data_dir / "images").glob("instruct_*.png"))
    for directory in (stage2_dir, stage1_dir):
        result = load_in_plain_transformers(directory, image)
        assert result == {"new_tokens": 5, "project_imported": False}


def test_records_that_cannot_fit_are_dropped_counted_and_reported(base_dir, data_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="qilin_med_vl.train.run")
    # 125 tokens fit an image record's prompt (the system line and 64 image tokens) and part of an answer
    # only for short records; text-only records always fit
    out = train(
        TINY_INSTRUCT,
        tmp_path / "short",
        f"model={base_dir}",
        f"data={data_dir / 'instruct.jsonl'}",
        "max_steps=1",
        "max_length=125",
    )
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["dropped"] > 0 and summary["kept"] + summary["dropped"] == 18
    assert set(summary["dropped_by_reason"]) <= {"image_tokens_cut", "no_answer_tokens"}
    assert f"dropped {summary['dropped']} (" in caplog.text


def test_bad_override_is_a_clear_error(capsys, tmp_path):
    code = main(["train", "--config", str(TINY_INSTRUCT), "stage=pretrain", f"output_dir={tmp_path}"])
    assert code == 1
    assert "stage 'pretrain' is not one of alignment, instruction" in capsys.readouterr().err


def test_missing_data_is_a_clear_error(base_dir, capsys, tmp_path):
    code = main(
        [
            "train",
            "--config",
            str(TINY_INSTRUCT),
            f"model={base_dir}",
            f"data={tmp_path}/none.jsonl",
            f"output_dir={tmp_path}/o",
        ]
    )
    assert code == 1
    assert "none.jsonl: no such data file" in capsys.readouterr().err


def test_help_explains_the_command(capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert exit_code.value.code == 0
    assert "--config" in text and "key=value" in text and "torchrun" in text


def test_loss_goes_down_on_the_tiny_task(stage2_dir):
    # not a quality claim: three steps at 2e-4 must already lower the loss of a random tiny model
    history = losses(stage2_dir)
    assert history[3] < history[1]


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="DeepSpeed is installed here")
def test_paper_config_without_deepspeed_says_how_to_proceed(capsys):
    code = main(["train", "--config", str(REPO / "configs/train/instruct.yaml")])
    assert code == 1
    assert (
        "pip install 'qilin-med-vl[deepspeed]', or run plain DDP with deepspeed=null"
        in capsys.readouterr().err
    )
