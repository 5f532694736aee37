"""CLI for `qilin convert`: original-LLaVA checkpoints (the released Qilin-Med-VL weights) → HF-native."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="convert_format", metavar="<format>")
    llava = formats.add_parser(
        "llava",
        help="original LLaVA (LlavaLlamaForCausalLM) → transformers LlavaForConditionalGeneration",
        description=(
            "Convert a checkpoint in the 2023 LLaVA format (as released for Qilin-Med-VL and Qilin-Med-VL-Chat) "
            "into a directory that loads with plain transformers. The vision tower weights are taken from the "
            "shards when present; --vision-tower (default: the config's mm_vision_tower) supplies the encoder's "
            "config and image normalisation, and its weights when the shards lack them."
        ),
    )
    llava.add_argument("src", help="original checkpoint directory (config.json, shards, tokenizer.model)")
    llava.add_argument("--out", required=True, help="output directory")
    llava.add_argument(
        "--vision-tower", help="CLIP directory or hub id (e.g. openai/clip-vit-large-patch14-336)"
    )
    llava.set_defaults(handler=run_llava)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)


def run_llava(args: argparse.Namespace) -> int:
    from qilin_med_vl.model.convert import convert_llava

    out = convert_llava(args.src, args.out, vision_tower=args.vision_tower)
    print(f"wrote {out}")
    return 0
