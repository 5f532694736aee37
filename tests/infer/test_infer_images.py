"""Request images: data: URLs and, when enabled, http(s) downloads (from a loopback server here)."""

from __future__ import annotations

import base64
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qilin_med_vl.infer.images import (
    ImageLimits,
    RequestImageError,
    StudyOptions,
    decode_data_url,
    load_url_image,
)

from .infer_helpers import draw_picture


def png_bytes(index: int = 1) -> bytes:
    buffer = io.BytesIO()
    draw_picture(index).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def picture_server():
    """Serves /scan.png (a small PNG) and /big.png (over the byte limit used below) on 127.0.0.1."""
    bodies = {"/scan.png": png_bytes(), "/big.png": png_bytes() + b"\0" * 50_000}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = bodies.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_data_url_round_trip():
    data = png_bytes(2)
    assert decode_data_url("data:image/png;base64," + base64.b64encode(data).decode(), 1_000_000) == data
    study = load_url_image(
        "data:image/png;base64," + base64.b64encode(data).decode(), StudyOptions(), ImageLimits()
    )
    assert study.image.tobytes() == draw_picture(2).tobytes()


@pytest.mark.parametrize(
    "url,reason",
    [
        ("data:image/png,notbase64", "bad_data_url"),
        ("data:image/png;base64", "bad_data_url"),
        ("data:application/javascript;base64,YWxlcnQoMSk=", "unsupported_media_type"),
        ("data:image/png;base64," + "A" * 2000, "image_too_large"),
    ],
)
def test_bad_data_urls(url, reason):
    with pytest.raises(RequestImageError) as caught:
        decode_data_url(url, max_bytes=1000)
    assert caught.value.reason == reason


def test_remote_images_only_when_enabled(picture_server):
    url = f"{picture_server}/scan.png"
    with pytest.raises(RequestImageError) as caught:
        load_url_image(url, StudyOptions(), ImageLimits())
    assert caught.value.reason == "remote_images_disabled"
    study = load_url_image(url, StudyOptions(), ImageLimits(allow_remote=True))
    assert study.image.tobytes() == draw_picture(1).tobytes()


def test_remote_download_limits(picture_server):
    limits = ImageLimits(allow_remote=True, max_bytes=20_000)
    with pytest.raises(RequestImageError) as caught:
        load_url_image(f"{picture_server}/big.png", StudyOptions(), limits)
    assert caught.value.reason == "image_too_large"
    with pytest.raises(RequestImageError) as caught:
        load_url_image(f"{picture_server}/missing.png", StudyOptions(), limits)
    assert caught.value.reason == "remote_fetch_failed" and "404" in str(caught.value)
