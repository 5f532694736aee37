"""The command-line options `qilin chat`, `qilin serve` and `qilin web` share, and their checks.

Model, generation, DICOM/NIfTI study options and the one decoded-image pixel limit are defined here
once, so the three shells accept the same flags with the same defaults. `check_port_free` lets a
server refuse a taken port before it spends a minute loading the model.
"""

from __future__ import annotations

import argparse
import errno
import socket

from qilin_med_vl.errors import QilinError


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


def add_image_limit_arguments(parser: argparse.ArgumentParser) -> None:
    from qilin_med_vl.infer.defaults import DEFAULT_MAX_IMAGE_PIXELS

    parser.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help=f"largest decoded image, width x height (default {DEFAULT_MAX_IMAGE_PIXELS:,})",
    )


def sampling_from(args):
    from qilin_med_vl.infer.engine import SamplingSettings

    return SamplingSettings(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
    )


def check_port_free(host: str, port: int) -> None:
    """Refuse a port that is taken (or an address not on this machine) before anything slow happens."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise QilinError(
                    f"--port {port}: {host}:{port} is already in use; pick another --port"
                ) from None
            raise QilinError(f"--host {host} --port {port}: cannot listen there ({error.strerror})") from None
