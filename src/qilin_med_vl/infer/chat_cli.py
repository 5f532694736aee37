"""`qilin chat`: ask the model about an image or a DICOM/NIfTI study in a terminal.

With a question: print one answer and exit. Without one: an interactive multi-turn session reading
questions from standard input (`/reset` forgets the conversation but keeps the picture, `/exit` quits).
Answers stream to standard output; notes (what was loaded, prompts) go to standard error.
"""

from __future__ import annotations

import argparse
import sys

from qilin_med_vl.infer.options import (
    add_generation_arguments,
    add_image_limit_arguments,
    add_model_arguments,
    add_study_arguments,
    sampling_from,
)

RESET_COMMAND = "/reset"
EXIT_COMMANDS = ("/exit", "/quit")


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  qilin chat --model ckpt --image chest.png '这张图像显示了什么？'\n"
        "  qilin chat --model ckpt --image ct.dcm --window lung      # interactive; /reset, /exit\n"
        "Research use only; not for clinical decisions."
    )
    add_model_arguments(parser)
    add_image_limit_arguments(parser)
    parser.add_argument("--image", default=None, help="PNG/JPEG/TIFF/BMP, DICOM file or series folder, NIfTI")
    parser.add_argument("question", nargs="?", default=None, help="ask once and exit; omit for a session")
    add_study_arguments(parser)
    add_generation_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from qilin_med_vl.infer.conversation import Conversation
    from qilin_med_vl.infer.engine import Engine
    from qilin_med_vl.infer.images import StudyOptions, load_image_source

    settings = sampling_from(args)
    conversation = Conversation()
    if args.image is not None:
        options = StudyOptions(args.window, args.frame, args.slice_index, args.axis)
        study = load_image_source(args.image, options, args.max_image_pixels)
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
