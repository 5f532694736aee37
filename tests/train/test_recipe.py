"""LLaVA-1.5 recipe details: modality-grouped batches, the global batch at any process count, a separate
projector learning rate, validation during training, `<image>` placed as LLaVA trains (and as inference
renders it), the LoRA config, and the loss curve drawn before the run ends."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from transformers import TrainingArguments

from qilin_med_vl.errors import QilinError
from qilin_med_vl.infer.engine import Engine
from qilin_med_vl.model.checkpoint import create_tiny
from qilin_med_vl.train.callbacks import CURVES_FILE, LOG_FILE, LossCurveCallback
from qilin_med_vl.train.config import load_config
from qilin_med_vl.train.records import parse_record
from qilin_med_vl.train.run import build_data, gradient_accumulation
from qilin_med_vl.train.sampling import TrainingOrder
from qilin_med_vl.train.tokenize import IGNORE_INDEX, ConversationTokenizer
from qilin_med_vl.train.trainer import QilinTrainer
from tests.train.conftest import REPO, TINY_ALIGN, TINY_INSTRUCT, train


def test_modality_grouped_batches_are_all_image_or_all_text_except_the_last():
    has_image = [index % 3 != 0 for index in range(103)]  # 68 image samples, 35 text-only
    lengths = [(index * 37) % 101 + 1 for index in range(103)]
    order = TrainingOrder(
        lengths, "group_by_modality_length", 8, seed=0, megabatch_factor=2, has_image=has_image
    )
    indices = order.order()
    assert sorted(indices) == list(range(103))
    batches = [indices[start : start + 8] for start in range(0, 103, 8)]
    kinds = [{has_image[i] for i in batch} for batch in batches]
    assert all(len(kind) == 1 for kind in kinds[:-1])
    assert {True} in kinds and {False} in kinds  # both modalities, shuffled together
    assert kinds[-1] == {True, False}  # 68 % 8 = 4 image and 35 % 8 = 3 text samples left over
    assert indices == order.order()  # fixed per seed and epoch
    order.set_epoch(1)
    assert indices != order.order()


def test_global_batch_size_sets_accumulation_from_the_process_count(tmp_path):
    config = load_config(REPO / "configs/train/align.yaml", ["deepspeed=null"])
    assert config.global_batch_size == 256 and config.per_device_train_batch_size == 32
    assert [gradient_accumulation(config, n) for n in (1, 2, 4, 8)] == [8, 4, 2, 1]
    instruct = load_config(REPO / "configs/train/instruct.yaml")
    assert instruct.global_batch_size == 128 and gradient_accumulation(instruct, 8) == 1
    assert gradient_accumulation(instruct, 2) == 4
    with pytest.raises(QilinError, match="global_batch_size 128 is not a multiple of .* 16 x 3 processes"):
        gradient_accumulation(instruct, 3)


def test_lora_config_is_llava_15s_recipe():
    config = load_config(REPO / "configs/train/instruct_lora.yaml")
    assert config.lora.enabled and (config.lora.r, config.lora.alpha) == (128, 256)
    assert (config.learning_rate, config.projector_lr) == (2e-4, 2e-5)
    assert config.global_batch_size == 128 and config.sampling == "group_by_modality_length"


def test_projector_lr_is_its_own_param_group(tmp_path):
    model = create_tiny()[0]
    model.requires_grad_(True)
    args = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=2e-4, weight_decay=0.1, use_cpu=True, report_to=[]
    )
    trainer = QilinTrainer(model=model, args=args, train_order=None, pad_token_id=0, projector_lr=2e-5)
    optimizer = trainer.create_optimizer()
    projector = {id(p) for p in model.model.multi_modal_projector.parameters()}
    by_lr: dict[float, set[int]] = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(group["lr"], set()).update(id(p) for p in group["params"])
    assert by_lr[2e-5] == projector
    assert by_lr[2e-4] == {id(p) for p in model.parameters()} - projector
    decays = {group["weight_decay"] for group in optimizer.param_groups if group["lr"] == 2e-5}
    assert decays == {0.0, 0.1}  # biases still without weight decay


def test_image_goes_to_the_front_of_its_turn_and_training_renders_the_inference_prompt(tiny):
    processor = tiny[1]
    raw = {"id": "a", "image": "x.png", "conversations": [{"from": "human", "value": "请描述这张图像。\n<image>"},
                                                         {"from": "gpt", "value": "胸部X光。"}]}  # fmt: skip
    record = parse_record(raw, "align.jsonl:1")
    front = ConversationTokenizer(processor, "chat", 400)(record)
    prompt = front.input_ids[: next(i for i, label in enumerate(front.labels) if label != IGNORE_INDEX)]

    engine = Engine(tiny[0], processor)
    messages = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (64, 64))},
                                             {"type": "text", "text": "请描述这张图像。"}]}]  # fmt: skip
    assert engine.prepare(messages).input_ids.tolist() == prompt

    as_written = ConversationTokenizer(processor, "chat", 400, image_placement="as_written")(record)
    text = processor.tokenizer.decode(as_written.input_ids)
    assert "请描述这张图像。\n<image>" in text.replace("<image>" * 64, "<image>")
    assert as_written.input_ids != front.input_ids


def test_validation_logs_eval_loss_and_held_out_answers(stage1_dir, data_dir, tmp_path):
    out = train(TINY_INSTRUCT, tmp_path / "val", f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}",
                "max_steps=2", "validation.fraction=0.25", "validation.eval_steps=2", "validation.answers=2",
                "validation.max_new_tokens=4")  # fmt: skip
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    evaluations = [entry for entry in log if "eval_loss" in entry]
    assert [entry["step"] for entry in evaluations] == [2] and evaluations[0]["eval_loss"] > 0
    answers = [json.loads(line) for line in (out / "eval_answers.jsonl").read_text().splitlines()]
    assert [(a["step"], a["sample"]) for a in answers] == [(2, 0), (2, 1)]
    assert all(a["reference"] for a in answers)
    assert json.loads((out / "data_summary.json").read_text())["kept"] == 18  # the records, before the split
    summary = json.loads((out / "train_summary.json").read_text())
    assert (summary["training_samples"], summary["validation_samples"]) == (14, 4)  # round(18 / 4) held out


def test_validation_file_is_tokenized_like_the_training_data(tiny, data_dir, tmp_path):
    lines = (data_dir / "instruct.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "held_out.jsonl").write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    config = load_config(TINY_INSTRUCT, [f"model={tmp_path}", f"data={data_dir / 'instruct.jsonl'}",
                                         f"output_dir={tmp_path / 'out'}", f"image_folder={data_dir}",
                                         f"validation.file={tmp_path / 'held_out.jsonl'}"])  # fmt: skip
    data = build_data(config, tiny[1])
    assert (len(data.train), len(data.validation)) == (18, 3)
    for index in range(3):
        assert data.validation[index]["input_ids"].tolist() == data.train[index]["input_ids"].tolist()


def test_the_loss_curve_is_drawn_at_the_first_log(tmp_path):
    class State:
        is_world_process_zero = True

    class Args:
        output_dir = str(tmp_path)

    (tmp_path / LOG_FILE).write_text(json.dumps({"step": 1, "loss": 2.0, "learning_rate": 1e-3}) + "\n")
    LossCurveCallback().on_log(Args(), State(), None, logs={"loss": 2.0})
    assert Image.open(tmp_path / CURVES_FILE).format == "PNG"


def test_a_second_run_on_the_same_data_skips_tokenization(base_dir, data_dir, tmp_path):
    common = [f"model={base_dir}", f"data={data_dir / 'align.jsonl'}", "max_steps=1"]
    first = train(TINY_ALIGN, tmp_path / "first", *common)
    second = train(TINY_ALIGN, tmp_path / "second", *common)  # the same token_cache/ beside both
    summaries = [json.loads((d / "train_summary.json").read_text()) for d in (first, second)]
    assert [s["token_cache_reused"] for s in summaries] == [False, True]
    assert summaries[0]["data"] == summaries[1]["data"]
    assert [e["loss"] for e in summaries[0]["log_history"] if "loss" in e] == [
        e["loss"] for e in summaries[1]["log_history"] if "loss" in e
    ]
