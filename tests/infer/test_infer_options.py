"""What the shells share: one pixel limit, a taken port refused before the model loads, upload names only."""

from __future__ import annotations

import socket

import pytest

from qilin_med_vl.cli import build_parser, main
from qilin_med_vl.imaging import ImageRejected
from qilin_med_vl.infer.defaults import DEFAULT_MAX_IMAGE_PIXELS
from qilin_med_vl.infer.images import StudyOptions, load_image_source


def test_chat_serve_and_web_share_one_image_pixel_limit():
    parser = build_parser()
    for command in (["chat", "--model", "m"], ["serve", "--model", "m"], ["web", "--model", "m"]):
        assert parser.parse_args(command).max_image_pixels == DEFAULT_MAX_IMAGE_PIXELS


@pytest.mark.parametrize("command", ["serve", "web"])
def test_a_taken_port_is_refused_before_the_model_loads(command, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # the model does not exist: reaching the model would give another error
        assert main([command, "--model", "/nonexistent/model", "--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert f"--port {port}: 127.0.0.1:{port} is already in use" in error


def test_an_upload_is_named_by_its_own_name_not_the_servers_temporary_path(tmp_path):
    upload = tmp_path / "gradio" / "0a1b2c" / "study.dcm"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"DICM but not really")
    with pytest.raises(ImageRejected) as caught:
        load_image_source(upload, StudyOptions(), DEFAULT_MAX_IMAGE_PIXELS, name=upload.name)
    assert "study.dcm" in str(caught.value) and str(upload.parent) not in str(caught.value)
