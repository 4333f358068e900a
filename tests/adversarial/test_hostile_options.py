"""For any value of any option of any command: exit 0, or exit 2 with one error line — never a traceback,
a crash or a run without end.

The options are read from the CLI itself, so a new option is fuzzed the day it is added. Commands that
run quickly here (``predict``, ``verify``, ``models``) run for real with a real bundle; the others get an
input that does not exist, so what is exercised is the option's parsing and the command's first checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

hypothesis = pytest.importorskip("hypothesis")
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeresnet.cli  # noqa: F401  (registers every command)
from edgeresnet.cli.core import cli
from tests.adversarial.corpus import corpus
from tests.runtime.tiny_bundle import blob_images

EXAMPLES = int(os.environ.get("EDGERESNET_FUZZ_EXAMPLES", "30"))
OPTIONS_FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HOSTILE_VALUES = ("nan", "NaN", "inf", "-inf", "-1", "0", "1e309", "1" * 30, "1" * 5000, "0x10", "", " ", "1,",
                  ",", ",,1", "１", "\x1b[2J", "1.5", "3", "8", "1e3", "-0", "100000", "2147483648", "None",
                  "cpu", "cuda:99", "GPU.7", "auto", "../x", "/dev/zero", "\x00")
values = st.sampled_from(HOSTILE_VALUES) | st.text(max_size=6) | st.integers(-(2**70), 2**70).map(str)


def _options() -> list[tuple[str, str]]:
    """(command, option) for every option that takes a value, read from the CLI."""
    found = []
    for name, command in sorted(cli.commands.items()):
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and param.opts[0] not in ("--help",):
                found.append((name, max(param.opts, key=len)))
    return found


OPTIONS = _options()


def _fixture_args(command: str, root: Path) -> list[str]:
    """Positional arguments: a real bundle and image for the quick commands, a missing input otherwise."""
    bundle = corpus().bundles["onnx"]
    image = root / "image.png"
    if not image.exists():
        from PIL import Image

        Image.fromarray(blob_images(1, seed=9)[0][0]).save(image)
    missing = str(root / "missing")
    return {"predict": [str(bundle), str(image)], "verify": [str(bundle)], "models": [],
            "benchmark": [missing], "compile": [missing, "--target", "openvino", "--output", str(root / "out")],
            "export": [missing, "--output", str(root / "out")], "train": ["--data", missing],
            "pipeline": ["--data", missing, "--output", str(root / "out")]}.get(command, [missing])


def assert_exit_0_or_one_error_line(result: object) -> None:
    assert result.exit_code in (0, 2), (result.exit_code, result.output)  # type: ignore[attr-defined]
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    if result.exit_code == 2:  # type: ignore[attr-defined]
        lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
        # One error line, last; before it only warnings and progress ("· step") lines.
        assert lines and lines[-1].startswith("error: "), result.stderr  # type: ignore[attr-defined]
        assert all(line.startswith(("warning: ", "· ")) for line in lines[:-1]), result.stderr  # type: ignore[attr-defined]
        assert "\x1b" not in result.stderr  # type: ignore[attr-defined]


def test_every_command_has_options_to_fuzz() -> None:
    commands = {command for command, _ in OPTIONS}
    assert {"predict", "verify", "train", "export", "benchmark", "compile", "pipeline"} <= commands
    assert ("train", "--threads") in OPTIONS and ("export", "--opset") in OPTIONS


@OPTIONS_FUZZ
@given(choice=st.sampled_from(OPTIONS), value=values)
def test_any_option_value_exits_0_or_2_with_one_line(tmp_path_factory: pytest.TempPathFactory,
                                                     choice: tuple[str, str], value: str) -> None:
    command, option = choice
    root = tmp_path_factory.mktemp("options")
    args = [command, *_fixture_args(command, root), option, value]
    if command in ("benchmark", "pipeline", "train", "export", "compile"):
        args.insert(0, "-q")
    result = CliRunner().invoke(cli, args)
    assert_exit_0_or_one_error_line(result)


@pytest.mark.parametrize(("command", "option", "value", "message"), [
    ("train", "--threads", "100000", "per CPU; this machine has"),
    ("predict", "--threads", "nan", "not a valid integer"),
    ("predict", "--workers", "100000", "per CPU; this machine has"),
    ("train", "--lr", "nan", "not a finite number"),
    ("train", "--input-size", "4096", "not in the range 28<=x<=1024"),
    ("export", "--opset", "99", "the opsets the installed onnx and torch exporter write"),
    ("benchmark", "--max-time", "inf", "not a finite number"),
    ("benchmark", "--batch-sizes", "1,100000", "integers from 1 to 4096"),
    ("train", "--epochs", "1" * 40, "not in the range 1<=x<=10000"),
])
def test_absurd_values_are_refused_before_anything_runs(tmp_path: Path, command: str, option: str, value: str,
                                                        message: str) -> None:
    result = CliRunner().invoke(cli, [command, *_fixture_args(command, tmp_path), option, value])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_threads_beyond_the_machine_are_refused_by_the_library_too() -> None:
    from edgeresnet.errors import EdgeResNetError
    from edgeresnet.limits import max_threads
    from edgeresnet.runtime.classifier import Classifier
    from edgeresnet.training import TrainJob

    for bad in (0, -1, max_threads() + 1, 100_000, 2.5, True):
        with pytest.raises(EdgeResNetError, match="threads must be a whole number"):
            Classifier.load(corpus().bundles["onnx"], threads=bad)  # type: ignore[arg-type]
        with pytest.raises(EdgeResNetError, match="threads must be"):
            TrainJob(threads=bad)  # type: ignore[arg-type]
    with Classifier.load(corpus().bundles["onnx"], threads=max_threads()) as classifier:
        assert classifier.runner.threads == max_threads()
