"""The `qilin` command: every subcommand answers --help with a description of itself."""

import pytest

from qilin_med_vl.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: qilin {command}")
    assert len(out.splitlines()) > 4  # a description and options, not a bare usage line


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(command in out for command in SUBCOMMANDS)


def test_building_the_parser_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; from qilin_med_vl.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_subcommand_starts_without_the_other_subcommands_modules():
    import subprocess
    import sys

    code = (
        "import sys; from qilin_med_vl.cli import SUBCOMMANDS, build_parser; build_parser(['data']); "
        "others = [module for name, (module, _) in SUBCOMMANDS.items() if name != 'data']; "
        "print(sorted(m for m in [*others, 'numpy'] if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("package", ["data", "imaging", "model", "train", "infer"])
def test_each_package_names_its_public_face(package):
    from importlib import import_module

    module = import_module(f"qilin_med_vl.{package}")
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name  # resolves to the object it names
