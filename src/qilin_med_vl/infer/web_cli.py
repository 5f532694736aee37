"""`qilin web`: the web page for uploading a study and chatting about it (built in infer/web.py)."""

from __future__ import annotations

import argparse

MAX_UPLOAD = "512mb"  # one DICOM or NIfTI file; larger uploads are refused by the page


def register(parser: argparse.ArgumentParser) -> None:
    from qilin_med_vl.infer.options import (
        add_generation_arguments,
        add_image_limit_arguments,
        add_model_arguments,
    )

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "example:\n  qilin web --model ckpt            # then open http://127.0.0.1:7860\n"
        "The page carries a research-use-only notice; it is not for clinical decisions."
    )
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    add_image_limit_arguments(parser)
    add_generation_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from qilin_med_vl.infer.engine import Engine
    from qilin_med_vl.infer.options import check_port_free, sampling_from
    from qilin_med_vl.infer.web import build_page

    check_port_free(args.host, args.port)
    engine = Engine.from_pretrained(args.model, dtype=args.dtype, device=args.device)
    page = build_page(engine, sampling_from(args), args.max_image_pixels)
    page.queue().launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        show_error=True,
        max_file_size=MAX_UPLOAD,
    )
    return 0
