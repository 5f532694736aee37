"""`qilin chat`: one-shot answers and interactive sessions (/reset, /exit), clear errors for bad input."""

from __future__ import annotations

import io

from qilin_med_vl.cli import main
from qilin_med_vl.imaging.study import load_study
from qilin_med_vl.infer.conversation import Conversation
from qilin_med_vl.infer.engine import SamplingSettings

from .infer_helpers import leaked, named_study, user_message

SETTINGS = SamplingSettings(max_new_tokens=8)


def test_one_shot_answer_on_a_png(tiny_checkpoint, png_path, engine, capsys):
    code = main(
        [
            "chat",
            "--model",
            str(tiny_checkpoint),
            "--image",
            str(png_path),
            "--max-new-tokens",
            "8",
            "这是什么？",
        ]
    )
    out = capsys.readouterr().out
    picture = load_study(png_path).image
    assert code == 0
    assert out == engine.generate([user_message("这是什么？", picture)], SETTINGS).text + "\n"


def test_interactive_session_keeps_history_until_reset(
    tiny_checkpoint, png_path, engine, capsys, monkeypatch
):
    questions = ["这是什么检查？", "病灶在哪一侧？", "/reset", "病灶在哪一侧？", "/exit", "never asked"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(questions) + "\n"))
    code = main(["chat", "--model", str(tiny_checkpoint), "--image", str(png_path), "--max-new-tokens", "8"])
    answers = capsys.readouterr().out.splitlines()
    assert code == 0

    conversation = Conversation(image=load_study(png_path).image)
    expected = []
    for question in ["这是什么检查？", "病灶在哪一侧？"]:
        expected.append(engine.generate(conversation.messages(question), SETTINGS).text)
        conversation.record(question, expected[-1])
    conversation.reset()
    expected.append(engine.generate(conversation.messages("病灶在哪一侧？"), SETTINGS).text)
    assert answers == expected  # the third answer is asked afresh, without the first two turns


def test_missing_image_is_a_clear_error(tiny_checkpoint, tmp_path, capsys):
    missing = tmp_path / "nope.png"
    code = main(["chat", "--model", str(tiny_checkpoint), "--image", str(missing), "你好"])
    err = capsys.readouterr().err
    assert code == 1
    assert str(missing) in err and "Traceback" not in err


def test_unreadable_image_is_a_clear_error(tiny_checkpoint, tmp_path, capsys):
    fake = tmp_path / "notes.png"
    fake.write_text("these are not pixels")
    assert main(["chat", "--model", str(tiny_checkpoint), "--image", str(fake), "你好"]) == 1
    assert "notes.png" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path, png_path, capsys):
    assert main(["chat", "--model", str(tmp_path / "no-model"), "--image", str(png_path), "你好"]) == 1
    assert "no-model" in capsys.readouterr().err


def test_one_shot_answer_on_the_pydicom_data_chest_x_ray(tiny_checkpoint, engine, capsys):
    from pydicom.data import get_testdata_file

    chest = get_testdata_file("RG1_UNCI.dcm", download=False)
    assert chest is not None, "pydicom-data is not installed; run `make install`"
    code = main(
        ["chat", "--model", str(tiny_checkpoint), "--image", chest, "--max-new-tokens", "8", "这是什么检查？"]
    )
    captured = capsys.readouterr()
    assert code == 0
    expected = engine.generate([user_message("这是什么检查？", load_study(chest).image)], SETTINGS).text
    assert captured.out == expected + "\n"
    assert "CR" in captured.err and "CHEST" in captured.err  # the non-identifying facts are shown


def test_ct_with_lung_window_leaks_no_identity(tiny_checkpoint, engine, tmp_path, capsys):
    study = tmp_path / "named_ct.dcm"
    study.write_bytes(named_study())
    code = main(
        [
            "chat",
            "--model",
            str(tiny_checkpoint),
            "--image",
            str(study),
            "--window",
            "lung",
            "--max-new-tokens",
            "8",
            "肺部有异常吗？",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "lung" in captured.err
    expected = engine.generate(
        [user_message("肺部有异常吗？", load_study(study, window="lung").image)], SETTINGS
    ).text
    assert captured.out == expected + "\n"
    assert leaked(captured.out + captured.err) == []
    # a frame the study does not have is refused without naming the patient
    assert main(["chat", "--model", str(tiny_checkpoint), "--image", str(study), "--frame", "7", "?"]) == 1
    error = capsys.readouterr().err
    assert "frame" in error and leaked(error) == []
