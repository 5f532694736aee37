"""CLI for `qilin model`: compose a new model (`create`) and describe an existing one (`info`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from qilin_med_vl.model.chat_template import CHAT_TEMPLATES
from qilin_med_vl.model.presets import PRESETS
from qilin_med_vl.model.projector import PROJECTOR_ACTIVATIONS

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def register(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="model_command", metavar="<action>")
    create = commands.add_parser(
        "create",
        help="compose a LLaVA model from a vision encoder and a causal LM",
        description=(
            "Compose transformers' LlavaForConditionalGeneration from a CLIP/SigLIP vision encoder and any "
            "causal LM (local directories or hub ids), add the <image> token, store a pad-to-square image "
            "processor and a chat template, and write an HF-native directory. `--preset tiny` builds a small "
            "random model fully offline (seconds); `--preset paper` uses the paper's parts "
            "(FlagAlpha/Llama2-Chinese-13b-Chat + openai/clip-vit-large-patch14-336, mlp2x_gelu)."
        ),
    )
    create.add_argument(
        "--preset", choices=sorted(PRESETS), help="named recipe; --vision/--llm/--projector override it"
    )
    create.add_argument("--vision", help="vision encoder: directory or hub id (CLIP or SigLIP)")
    create.add_argument("--llm", help="causal language model: directory or hub id")
    create.add_argument("--projector", choices=sorted(PROJECTOR_ACTIVATIONS), help="default: mlp2x_gelu")
    create.add_argument(
        "--chat-template",
        default="vicuna_v1",
        choices=[*CHAT_TEMPLATES, "llm"],
        help="vicuna_v1 (as the released model) or llm (the LLM tokenizer's own template)",
    )
    create.add_argument(
        "--dtype", default="auto", choices=DTYPE_CHOICES, help="weights dtype (auto: as stored)"
    )
    create.add_argument(
        "--seed", type=int, default=0, help="seed for the projector (and the tiny preset's weights)"
    )
    create.add_argument("--out", required=True, type=Path, help="output directory (created)")
    create.set_defaults(handler=run_create)

    info = commands.add_parser("info", help="describe an HF-native model directory")
    info.add_argument("model", help="model directory or hub id")
    info.set_defaults(handler=run_info)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)


def run_create(args: argparse.Namespace) -> int:
    from qilin_med_vl.errors import QilinError
    from qilin_med_vl.model.checkpoint import DTYPES, create_from_pretrained, create_tiny, save_checkpoint

    if args.out.exists() and not args.out.is_dir():
        raise QilinError(f"--out {args.out}: a file is in the way; give a directory path (it is created)")
    preset = PRESETS[args.preset] if args.preset else None
    projector = args.projector or (preset.projector if preset else "mlp2x_gelu")
    if args.preset == "tiny" and not (args.vision or args.llm):
        model, processor = create_tiny(projector, chat_template=args.chat_template, seed=args.seed)
    else:
        vision = args.vision or (preset.vision if preset else None)
        llm = args.llm or (preset.llm if preset else None)
        if not vision or not llm:
            raise QilinError("give --preset, or both --vision and --llm")
        model, processor = create_from_pretrained(
            vision, llm, projector, chat_template=args.chat_template, dtype=DTYPES[args.dtype], seed=args.seed
        )
    out = save_checkpoint(model, processor, args.out)
    print(f"wrote {out} ({describe(model)})")
    return 0


def describe(model) -> str:
    from qilin_med_vl.model.projector import projector_type

    config = model.config
    parameters = sum(p.numel() for p in model.parameters())
    return (
        f"{parameters / 1e6:.1f}M parameters, projector {projector_type(config)}, "
        f"{config.image_seq_length} image tokens, vocabulary {config.text_config.vocab_size}"
    )


def run_info(args: argparse.Namespace) -> int:
    from qilin_med_vl.model.checkpoint import load_checkpoint

    model, processor = load_checkpoint(args.model)
    print(f"{args.model}: {describe(model)}")
    print(
        f"image size {processor.image_processor.crop_size}, chat template: {'yes' if processor.chat_template else 'no'}"
    )
    return 0
