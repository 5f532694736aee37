"""`qilin chat`: ask the model about an image or a DICOM/NIfTI study in a terminal.

With a question: print one answer and exit. Without one: an interactive multi-turn session reading
questions from standard input (`/reset` forgets the conversation but keeps the picture, `/exit` quits).
Answers stream to standard output; notes (what was loaded, prompts) go to standard error.
"""

from __future__ import annotations

import argparse
import sys

RESET_COMMAND = "/reset"
EXIT_COMMANDS = ("/exit", "/quit")


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    from qilin_med_vl.infer.defaults import DEFAULT_MAX_NEW_TOKENS

    group = parser.add_argument_group("generation")
    group.add_argument(
        "--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS, help="answer length limit"
    )
    group.add_argument(
        "--temperature", type=float, default=0.0, help="0 = greedy, deterministic (default); >0 samples"
    )
    group.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (with --temperature)")
    group.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=True, help="checkpoint directory (or hub id available locally)")
    group.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    group.add_argument(
        "--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: where transformers puts it)"
    )


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    from qilin_med_vl.infer.images import window_choices

    group = parser.add_argument_group("DICOM / NIfTI")
    group.add_argument(
        "--window",
        default=None,
        help=f"greyscale window: {', '.join(window_choices())}, or 'centre,width' (default: the study's own)",
    )
    group.add_argument("--frame", type=int, default=None, help="frame of a multi-frame DICOM (0-based)")
    group.add_argument(
        "--slice", dest="slice_index", type=int, default=None, help="slice of a volume (0-based)"
    )
    group.add_argument(
        "--axis",
        type=int,
        default=2,
        choices=[0, 1, 2],
        help="NIfTI slicing axis: 0 sagittal, 1 coronal, 2 axial",
    )


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  qilin chat --model ckpt --image chest.png '这张图像显示了什么？'\n"
        "  qilin chat --model ckpt --image ct.dcm --window lung      # interactive; /reset, /exit\n"
        "Research use only; not for clinical decisions."
    )
    add_model_arguments(parser)
    parser.add_argument("--image", default=None, help="PNG/JPEG/TIFF/BMP, DICOM file or series folder, NIfTI")
    parser.add_argument("question", nargs="?", default=None, help="ask once and exit; omit for a session")
    add_study_arguments(parser)
    add_generation_arguments(parser)
    parser.set_defaults(handler=run)


def sampling_from(args):
    from qilin_med_vl.infer.engine import SamplingSettings

    return SamplingSettings(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
    )


def run(args) -> int:
    from qilin_med_vl.imaging.raster import DEFAULT_MAX_PIXELS
    from qilin_med_vl.infer.conversation import Conversation
    from qilin_med_vl.infer.engine import Engine
    from qilin_med_vl.infer.images import StudyOptions, load_image_source

    settings = sampling_from(args)
    conversation = Conversation()
    if args.image is not None:
        options = StudyOptions(args.window, args.frame, args.slice_index, args.axis)
        study = load_image_source(args.image, options, DEFAULT_MAX_PIXELS)
        conversation.image = study.image
        facts = ", ".join(f"{key}: {value}" for key, value in study.description.items())
        print(f"[image] {facts}", file=sys.stderr)
    engine = Engine.from_pretrained(args.model, dtype=args.dtype, device=args.device)

    if args.question is not None:
        answer(engine, conversation, args.question, settings)
        return 0

    interactive = sys.stdin.isatty()
    print(f"Ask about the image; {RESET_COMMAND} starts over, {EXIT_COMMANDS[0]} quits.", file=sys.stderr)
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0
        question = line.strip()
        if not question:
            continue
        if question in EXIT_COMMANDS:
            return 0
        if question == RESET_COMMAND:
            conversation.reset()
            print("[conversation reset]", file=sys.stderr)
            continue
        answer(engine, conversation, question, settings)


def answer(engine, conversation, question: str, settings) -> str:
    pieces = []
    for piece in engine.stream(conversation.messages(question), settings):
        pieces.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    text = "".join(pieces)
    conversation.record(question, text)
    return text
