"""Model sources as a new user types them: local paths that do not exist fail at once; hub ids stay hub ids."""

from __future__ import annotations

import time

import pytest
from PIL import Image

from qilin_med_vl.cli import main
from qilin_med_vl.model.sources import is_hub_id


@pytest.mark.parametrize("source", ["/tmp/x", "runs/nope", "./m", "m", "a/b/c", "~/model"])
def test_paths_are_not_hub_ids(source):
    assert not is_hub_id(source)


@pytest.mark.parametrize("source", ["FlagAlpha/Llama2-Chinese-13b-Chat", "openai/clip-vit-large-patch14-336"])
def test_owner_slash_name_is_a_hub_id(source):
    assert is_hub_id(source)


def test_a_local_owner_folder_makes_it_a_path(tmp_path, monkeypatch):
    (tmp_path / "checkpoints").mkdir()
    monkeypatch.chdir(tmp_path)
    assert not is_hub_id("checkpoints/stage2")


@pytest.mark.parametrize("source", ["/tmp/qilin-no-such-model", "runs/nope", "./m"])
def test_a_missing_local_model_says_no_such_directory_at_once(source, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.new("RGB", (40, 40)).save(image)
    started = time.monotonic()
    assert main(["chat", "--model", source, "--image", str(image), "hi"]) == 1
    assert time.monotonic() - started < 5  # no hub retries
    error = capsys.readouterr().err
    assert f"cannot load the model from {source}: no such directory" in error
    assert "Traceback" not in error


def test_model_create_onto_a_file_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "model.bin"
    target.write_bytes(b"x")
    assert main(["model", "create", "--preset", "tiny", "--out", str(target)]) == 1
    assert "a file is in the way" in capsys.readouterr().err
    assert target.read_bytes() == b"x"
