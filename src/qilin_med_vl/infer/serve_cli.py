"""`qilin serve`: the OpenAI-compatible HTTP API for one checkpoint (FastAPI app in infer/server.py)."""

from __future__ import annotations

import argparse
import logging
import os

from qilin_med_vl.errors import QilinError


def register(parser: argparse.ArgumentParser) -> None:
    from qilin_med_vl.infer import defaults
    from qilin_med_vl.infer.options import add_image_limit_arguments, add_model_arguments

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "endpoints: POST /v1/chat/completions (stream or not), GET /v1/models, GET /health\n"
        "example:\n"
        "  QILIN_KEY=secret qilin serve --model ckpt --api-key-env QILIN_KEY\n"
        "  then, with the openai package: OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='secret')\n"
        "Research use only; not for clinical decisions."
    )
    add_model_arguments(parser)
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    net.add_argument("--port", type=int, default=8000)
    net.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="name of the environment variable holding the API key clients must send (default: no key)",
    )
    net.add_argument(
        "--served-model-name", default=None, help="model id clients use (default: the directory name)"
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-request-mb", type=float, default=defaults.DEFAULT_MAX_REQUEST_BYTES / 2**20)
    add_image_limit_arguments(limits)
    limits.add_argument(
        "--max-images", type=int, default=defaults.DEFAULT_MAX_IMAGES, help="images per request"
    )
    limits.add_argument(
        "--max-tokens",
        type=int,
        default=defaults.DEFAULT_MAX_TOKENS_LIMIT,
        help="largest max_tokens accepted",
    )
    limits.add_argument(
        "--allow-remote-images",
        action="store_true",
        help="let clients send http(s) image URLs that the server downloads (off: data: URLs only)",
    )
    batching = parser.add_argument_group("batching")
    batching.add_argument("--max-batch-size", type=int, default=defaults.DEFAULT_MAX_BATCH_SIZE)
    batching.add_argument("--batch-wait-ms", type=float, default=defaults.DEFAULT_BATCH_WAIT_S * 1000)
    parser.set_defaults(handler=run)


def api_key_from_env(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise QilinError(
            f"--api-key-env {variable}: that environment variable is unset or empty; export the key in it"
        )
    return key


def run(args) -> int:
    import uvicorn

    from qilin_med_vl.infer.engine import Engine
    from qilin_med_vl.infer.images import ImageLimits
    from qilin_med_vl.infer.options import check_port_free
    from qilin_med_vl.infer.server import ServerSettings, create_app

    api_key = api_key_from_env(args.api_key_env)
    check_port_free(args.host, args.port)
    engine = Engine.from_pretrained(args.model, dtype=args.dtype, device=args.device)
    settings = ServerSettings(
        model_name=args.served_model_name or engine.name,
        api_key=api_key,
        max_request_bytes=int(args.max_request_mb * 2**20),
        max_images_per_request=args.max_images,
        max_tokens_limit=args.max_tokens,
        image_limits=ImageLimits(max_pixels=args.max_image_pixels, allow_remote=args.allow_remote_images),
        max_batch_size=args.max_batch_size,
        batch_wait_s=args.batch_wait_ms / 1000,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"serving {settings.model_name!r} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(create_app(engine, settings), host=args.host, port=args.port, log_level="info")
    return 0
