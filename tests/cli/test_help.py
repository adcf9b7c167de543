"""Every command's ``--help`` at 80 columns: flags without a type, choices whole, required
options in the usage line, an example; and the same for an option declared later."""

from __future__ import annotations

from enum import Enum
from typing import Literal

import pytest
import typer
from typer.testing import CliRunner

from cnnkit.cli._help import CnnkitGroup, spaced_choices
from cnnkit.cli.main import COMMANDS, load_command, main


class Bn(str, Enum):
    frozen = "frozen"
    train = "train"


def _command_paths() -> list[list[str]]:
    """Every command and group of the ``cnnkit`` tree, as argv prefixes."""
    paths: list[list[str]] = [[]]

    def walk(command, path):
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    for name in COMMANDS:  # each command loads when it is run or asked for help
        walk(load_command(name), [name])
    return paths


PATHS = _command_paths()


def _flat(text: str) -> str:
    """Help text as one line of words, the table's borders removed (wrapped text joins up)."""
    return " ".join(text.replace("│", " ").split())


@pytest.fixture
def help_of(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")

    def run(path: list[str]) -> str:
        assert main([*path, "--help"]) == 0
        return capsys.readouterr().out

    return run


def test_the_tree_has_the_documented_commands():
    names = {" ".join(p) for p in PATHS}
    assert {"train", "predict", "explain", "models", "datasets export", "genomics cv"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "cnnkit")
def test_help_at_80_columns_is_whole_and_has_an_example(path, help_of):
    text = help_of(path)
    assert "<bool>" not in text  # flags take no value
    assert "…" not in text  # nothing cut at 80 columns
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Example" in text, f"cnnkit {' '.join(path)} --help has no example"


def test_flags_required_options_and_choices(help_of):
    text = help_of(["explain"])
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "--out <path>" in usage  # required: named where the user looks first
    assert "--json" not in usage and "--json" in text
    train = help_of(["train"])
    assert "onecycle | plateau" in _flat(train)  # wrapped, not cut
    assert "cnnkit models" in train  # --model points at the list of models
    assert "required unless --resume" in _flat(train)


def test_options_declared_later_get_the_same_help(monkeypatch):
    """A command added with a Literal, an Enum and a bool flag (as generated from a dataclass)."""
    later = typer.Typer(cls=CnnkitGroup, context_settings={"help_option_names": ["-h", "--help"]})

    @later.command()
    def fit(
        schedule: Literal["none", "step", "cosine", "onecycle", "plateau", "exponential"] = "none",
        bn: Bn = Bn.frozen,
        mixup: bool = typer.Option(False, "--mixup", help="Mix pairs of images."),
        out: str = typer.Option(..., "--out", help="Run folder."),
    ) -> None:
        """Fit.

        Example: fit --out r
        """

    @later.command()
    def other() -> None:
        """Other."""

    monkeypatch.setenv("COLUMNS", "80")
    res = CliRunner().invoke(later, ["fit", "--help"])
    assert res.exit_code == 0, res.output
    text = _flat(res.output)
    assert "<bool>" not in text and "…" not in res.output
    assert "none | step | cosine | onecycle | plateau | exponential" in text
    assert "frozen | train" in text
    assert "--out <str>" in text.split("Usage:")[1].split("Fit.")[0]
    res = CliRunner().invoke(later, ["fit", "--out", "r", "--schedule", "cosine", "--mixup"])
    assert res.exit_code == 0, res.output  # behaviour unchanged: values still parse


@pytest.mark.parametrize(
    "text,expected",
    [
        ("sgd|adam|adamw", "sgd | adam | adamw"),
        ("auto|fp32|bf16 (auto decides).", "auto | fp32 | bf16 (auto decides)."),
        ("gradcam | gradcam++ | hirescam.", "gradcam | gradcam++ | hirescam."),
        ("a path/with|no choice", "a path/with|no choice"),
    ],
)
def test_spaced_choices(text, expected):
    assert spaced_choices(text) == expected


def test_models_prints_a_terminal_table_and_markdown_on_request(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "|---|" not in table and "`basic_convnet`" not in table
    row = next(line for line in table.splitlines() if line.startswith("basic_convnet "))
    assert "1x28x28" in row and "104,202" in row
    assert main(["models", "--markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("| name |") and "| `basic_convnet` |" in markdown
