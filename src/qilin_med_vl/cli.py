"""The one command, `qilin`: parses the command line and hands each subcommand to the module that owns it.

Each owning module exposes `register(parser)`, which adds its arguments and sets `handler`, a function
taking the parsed namespace and returning an exit code. Owning modules import heavy libraries (torch,
transformers, servers) inside their handlers, and `main` imports only the module of the subcommand it
runs, so a command starts without loading the others' dependencies (numpy, DICOM readers, HTTP clients).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from importlib import import_module

from qilin_med_vl import __version__
from qilin_med_vl.errors import QilinError

# subcommand -> (module owning it, one-line summary shown by `qilin --help`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "data": ("qilin_med_vl.data.cli", "build ChiMed-VL-style datasets from English PMC sources"),
    "model": ("qilin_med_vl.model.cli", "compose a LLaVA model from a vision encoder and an LLM"),
    "convert": (
        "qilin_med_vl.model.convert_cli",
        "convert original-LLaVA checkpoints (the released weights)",
    ),
    "train": ("qilin_med_vl.train.cli", "two-stage curriculum training (align, instruct)"),
    "chat": ("qilin_med_vl.infer.chat_cli", "ask the model about an image or a DICOM study in a terminal"),
    "serve": ("qilin_med_vl.infer.serve_cli", "OpenAI-compatible HTTP API"),
    "web": ("qilin_med_vl.infer.web_cli", "web page for uploading a study and chatting about it"),
    "eval": ("qilin_med_vl.eval.cli", "measure a model on medical VQA benchmarks"),
    "demo": (
        "qilin_med_vl.demo.cli",
        "the whole pipeline on a synthetic world, proving the model reads the pictures",
    ),
}


def build_parser(registered: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The `qilin` parser; only the subcommands in `registered` (default: all) get their options."""
    registered = SUBCOMMANDS if registered is None else set(registered)
    parser = argparse.ArgumentParser(
        prog="qilin",
        description="Qilin-Med-VL toolkit. Run `qilin <command> --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"qilin-med-vl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module_name, summary) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        if name in registered:
            import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # the top level has no option that takes a value, so a subcommand can only be the first word
    parser = build_parser(registered=[word for word in argv[:1] if word in SUBCOMMANDS])
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(handler(args) or 0)
    except QilinError as error:
        print(f"qilin {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
