"""The CLI through Click's CliRunner: help for every command, models, train, errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeresnet.cli import cli


def _commands() -> list[str]:
    return sorted(cli.commands)


@pytest.mark.parametrize("command", ["", *_commands()])
def test_help_for_every_command(command: str) -> None:
    args = [command, "--help"] if command else ["--help"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if command:
        assert len(cli.commands[command].help or "") > 20


def test_models_json_lists_the_registry() -> None:
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    by_name = {row["name"]: row for row in rows}
    assert by_name["resnet50"]["params"] == 25_557_032
    assert 4.0e9 < by_name["resnet50"]["macs"] < 4.2e9
    assert {"resnet20", "resnext50_32x4d", "seresnet50", "preact_resnet110"} <= set(by_name)
    assert all({"name", "params", "macs"} <= set(row) for row in rows)


def test_models_table_and_family_filter() -> None:
    result = CliRunner().invoke(cli, ["models", "--family", "resnet-cifar"])
    assert result.exit_code == 0, result.output
    assert "resnet20" in result.output and "resnet50 " not in result.output
    bad = CliRunner().invoke(cli, ["models", "--family", "nope"])
    assert bad.exit_code == 2 and "unknown family" in bad.output


def test_unknown_model_suggests_close_names() -> None:
    result = CliRunner().invoke(cli, ["train", "--model", "resnet5O", "--output", "x"])
    assert result.exit_code == 2
    assert "resnet50" in result.output


def test_missing_dataset_is_a_one_line_error(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["train", "--data", f"fashion-mnist:{tmp_path}", "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.startswith("error:") and "dataset-fashion-mnist" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o" / "card.json").exists()


def test_train_and_resume_through_the_cli(tmp_path, fashion_mnist) -> None:
    output = tmp_path / "run"
    common = ["train", "--model", "resnet20", "--data", fashion_mnist, "--output", str(output),
              "--train-limit", "256", "--eval-limit", "100", "--batch-size", "64", "--no-progress"]
    first = CliRunner().invoke(cli, [*common, "--epochs", "1"])
    assert first.exit_code == 0, first.output
    card = json.loads((output / "card.json").read_text())
    assert card["metrics"]["epoch"] == 1 and card["architecture"] == "resnet20"
    assert card["preprocessing"]["input_size"] == [28, 28] and card["in_chans"] == 1
    assert len(card["class_names"]) == 10 and card["data"]["train_fingerprint"]

    resumed = CliRunner().invoke(cli, [*common, "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "epoch 2/2" in resumed.output and "epoch 1/2" not in resumed.output
    card = json.loads((output / "card.json").read_text())
    assert card["metrics"]["epoch"] == 2 and len(card["metrics"]["history"]) == 2

    finished = CliRunner().invoke(cli, [*common, "--epochs", "2", "--resume"])
    assert finished.exit_code == 2 and "already finished" in finished.output


def test_resume_without_state_is_an_error(tmp_path, fashion_mnist) -> None:
    result = CliRunner().invoke(cli, ["train", "--data", fashion_mnist, "--output", str(tmp_path / "none"),
                                      "--resume", "--train-limit", "64", "--no-progress"])
    assert result.exit_code == 2 and "nothing to resume" in result.output


def test_an_existing_checkpoint_is_not_overwritten_silently(tmp_path, fashion_mnist) -> None:
    output = tmp_path / "run"
    common = ["train", "--data", fashion_mnist, "--output", str(output), "--train-limit", "64",
              "--eval-limit", "50", "--epochs", "1", "--no-progress"]
    assert CliRunner().invoke(cli, common).exit_code == 0
    again = CliRunner().invoke(cli, common)
    assert again.exit_code == 2 and "already holds a checkpoint" in again.output
    assert CliRunner().invoke(cli, [*common, "--overwrite"]).exit_code == 0


def test_usage_mistakes_are_one_line_from_the_console_script() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "edgeresnet", "train", "--model", "resnet5O"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:") and "resnet50" in result.stderr


@pytest.mark.parametrize("command", ["export", "compile", "pipeline", "benchmark", "train"])
def test_every_command_that_writes_offers_overwrite(command: str) -> None:
    # Without it an existing output is refused (see tests/test_output_safety.py and edgeresnet.placement).
    options = {option for param in cli.commands[command].params for option in getattr(param, "opts", [])}
    assert "--overwrite" in options
