"""CLI for `qilin train`: run one curriculum stage from a YAML config, with `key=value` overrides."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train one stage of Qilin-Med-VL on LLaVA conversation records (JSONL, JSON list, or a folder of
*.jsonl shards with images beside them).

  stage alignment    the projector learns to map image features into the LLM (ViT and LLM frozen)
  stage instruction  projector + LLM learn medical QA (ViT frozen); LoRA/QLoRA optional

The output directory is an HF-native checkpoint (LlavaForConditionalGeneration + AutoProcessor load it
in plain transformers) with train_config.yaml (the resolved config), data_summary.json (records kept,
dropped and why), train_log.jsonl, TensorBoard events and loss_curve.png beside it.

Examples:
  qilin train --config configs/train/tiny_align.yaml
  qilin train --config configs/train/tiny_instruct.yaml max_steps=20 packing=true
  torchrun --nproc_per_node 8 -m qilin_med_vl.cli train --config configs/train/align.yaml
  accelerate launch --config_file configs/train/accelerate/fsdp.yaml -m qilin_med_vl.cli train \\
      --config configs/train/instruct.yaml deepspeed=null
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", required=True, help="YAML training config (see configs/train/)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override config keys, e.g. max_steps=10 output_dir=runs/x lora.enabled=true",
    )
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    import logging

    from qilin_med_vl.train.config import load_config
    from qilin_med_vl.train.run import is_main_process, run

    config = load_config(args.config, args.overrides)
    logging.basicConfig(
        level=logging.INFO if is_main_process() else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    result = run(config)
    if is_main_process():
        losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
        last = f", last loss {losses[-1]:.4f}" if losses else ""
        print(f"wrote {result.output_dir} ({result.data_summary['kept']} records trained on{last})")
    return 0
