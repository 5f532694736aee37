"""Configs: the shipped YAML files parse, carry the paper's hyperparameters, and overrides apply."""

from __future__ import annotations

import json

import pytest
import yaml

from qilin_med_vl.config import ConfigError
from qilin_med_vl.train.config import load_config, resolved_yaml
from qilin_med_vl.train.records import read_records, training_data
from tests.train.conftest import REPO

CONFIGS = REPO / "configs/train"


@pytest.mark.parametrize("name", ["align", "instruct", "instruct_lora", "tiny_align", "tiny_instruct"])
def test_shipped_configs_load_and_name_their_command(name):
    path = CONFIGS / f"{name}.yaml"
    config = load_config(path)
    assert config.stage == ("alignment" if "align" in name else "instruction")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = "\n".join(
        line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("#"))]
    )
    assert f"train --config configs/train/{name}.yaml" in header


def test_paper_hyperparameters():
    align, instruct = load_config(CONFIGS / "align.yaml"), load_config(CONFIGS / "instruct.yaml")
    # the paper (section 5.2): lr 1e-3 / 2e-5, batch 32 / 16 per GPU on 8 GPUs (global 256 / 128), 1 epoch,
    # warmup 0.03, cosine, max length 2048, bf16
    assert (align.learning_rate, align.per_device_train_batch_size, align.global_batch_size) == (
        1e-3,
        32,
        256,
    )
    assert (instruct.learning_rate, instruct.per_device_train_batch_size, instruct.global_batch_size) == (
        2e-5,
        16,
        128,
    )
    for config in (align, instruct):
        assert (config.num_train_epochs, config.warmup_ratio, config.lr_scheduler_type) == (1, 0.03, "cosine")
        assert (config.max_length, config.bf16, config.max_steps) == (2048, True, -1)
    assert instruct.model == align.output_dir  # stage 2 starts from stage 1's output


def test_overrides_and_numbers_without_a_dot(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stage: instruction\nmodel: m\ndata: d\nlearning_rate: 2e-5\n", encoding="utf-8")
    config = load_config(path, ["max_steps=7", "lora.enabled=true", "lora.r=4", "report_to=[]"])
    assert (config.learning_rate, config.max_steps, config.lora.enabled, config.lora.r) == (2e-5, 7, True, 4)
    assert config.report_to == []
    assert yaml.safe_load(resolved_yaml(config))["lora"]["r"] == 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("nonsense=1", r"unknown key\(s\) nonsense; known: stage, model"),
        ("max_steps", "not key=value"),
        ("learning_rate=fast", "not a number"),
    ],
)
def test_bad_overrides(override, message, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stage: alignment\nmodel: m\ndata: d\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def test_reads_jsonl_json_list_and_shard_folders(tmp_path):
    record = {"id": "a", "image": "x.png", "conversations": [{"from": "human", "value": "<image>\n问"},
                                                             {"from": "gpt", "value": "答"}]}  # fmt: skip
    (tmp_path / "shards").mkdir()
    for index in range(2):
        (tmp_path / "shards" / f"part-{index}.jsonl").write_text(
            json.dumps(record) + "\n\n", encoding="utf-8"
        )
    (tmp_path / "list.json").write_text(json.dumps([record, record, record]), encoding="utf-8")
    shards = training_data(tmp_path / "shards", "alignment")
    assert shards.image_folder == tmp_path / "shards"
    assert len(read_records(shards.files)) == 2
    records = read_records(training_data(tmp_path / "list.json", "alignment").files)
    assert len(records) == 3 and records[2].where.endswith("list.json[2]")
    assert records[0].turns == [("user", "<image>\n问"), ("assistant", "答")]


def test_distributed_configs_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    fsdp = load_config_from_file(str(CONFIGS / "accelerate/fsdp.yaml"))
    assert fsdp.distributed_type == "FSDP" and fsdp.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert load_config_from_file(str(CONFIGS / "accelerate/ddp.yaml")).distributed_type == "MULTI_GPU"
    for stage, path in ((2, "deepspeed/zero2.json"), (3, "deepspeed/zero3.json")):
        config = json.loads((CONFIGS / path).read_text(encoding="utf-8"))
        assert config["zero_optimization"]["stage"] == stage and config["bf16"]["enabled"] == "auto"
    assert load_config(CONFIGS / "align.yaml").deepspeed is None  # DDP: only the projector trains
    assert load_config(CONFIGS / "instruct.yaml").deepspeed == "configs/train/deepspeed/zero3.json"
