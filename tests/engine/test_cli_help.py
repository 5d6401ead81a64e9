"""Finding one's way around `earmark` from the terminal: --version, -h, open --help, and a description with
examples on every command's help."""

from __future__ import annotations

import importlib.metadata
import shlex
import tomllib
from pathlib import Path

import pytest

import engine
from app.main import main as earmark
from engine.cli import build_parser
from engine.cli import main as cli_main
from engine.cli_help import HELP, commands, examples, version

REPO = Path(__file__).resolve().parents[2]
COMMANDS = commands(build_parser())


def test_version_says_the_installed_version(capsys):
    assert earmark(["--version"]) == 0
    assert capsys.readouterr().out == f"earmark {importlib.metadata.version('earmark')}\n"


def test_version_from_a_source_tree_that_was_never_installed(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version() == engine.__version__ == declared


def test_open_help_exits_0_with_usage_description_and_example(capsys):
    assert earmark(["open", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: earmark open [-h] [PROJECT]")
    assert "Open the window, on PROJECT if one is given" in out
    assert "earmark open ~/earmark/pumps" in out


def test_open_with_two_projects_is_a_usage_error(capsys):
    assert earmark(["open", "a", "b"]) == 2
    assert "unrecognized arguments: b" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    assert earmark(["-h"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()}
    top_level = {key for key in COMMANDS if " " not in key}
    assert top_level <= listed
    assert {"open", "scores", "propose", "evaluate", "labels", "demo"} <= top_level
    assert "`earmark COMMAND -h` describes a command" in out


def test_every_command_and_action_has_a_description_and_an_example():
    assert {"labels export", "export dcase", "weights add", "train leak"} <= set(COMMANDS)
    missing = [key for key, parser in COMMANDS.items() if len(parser.description or "") < 20 or not examples(parser)]
    assert not missing, f"commands without a description or an example (add them to engine/cli_help.py): {missing}"


def test_commands_defined_without_help_get_the_entries_of_cli_help():
    for key in ("open", "fit", "scores", "propose", "labels export", "train leak"):
        assert COMMANDS[key].description.split() == HELP[key][0].split()
        assert examples(COMMANDS[key]) == list(HELP[key][1])


@pytest.mark.parametrize("key", sorted(COMMANDS))
def test_each_commands_help_shows_its_description_and_examples(key, capsys):
    assert cli_main([*key.split(), "-h"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the description is wrapped to the terminal
    assert " ".join(COMMANDS[key].description.split()) in out
    for line in examples(COMMANDS[key]):
        assert " ".join(line.split()) in out


@pytest.mark.parametrize("key", sorted(COMMANDS))
def test_the_examples_are_command_lines_that_earmark_accepts(key):
    for line in examples(COMMANDS[key]):
        words = shlex.split(line.split(" > ")[0])
        args = build_parser().parse_args(words[1:])  # a usage error exits with SystemExit(2)
        assert " ".join(words[1:]).startswith(key) or (key == "open" and args.command is None)
