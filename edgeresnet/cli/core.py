"""The `edgeresnet` command line: thin Click adapters over the library.

Each command's docstring is its help. A user mistake (any EdgeResNetError) becomes one line on
stderr and exit code 2; ``--debug`` shows the traceback. Heavy imports happen inside commands so
``edgeresnet --help`` stays instant.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import click

from edgeresnet.errors import EdgeResNetError, describe_os_error, one_line
from edgeresnet.limits import (
    MAX_THREADS_PER_CPU,
    machine_cpus,
    max_threads,
    printable,
    require_memory,
    tensor_bytes,
)
from edgeresnet.version import __version__

USER_ERROR_EXIT = 2
# Libraries of the build side (the `build` extra): a runtime-only install lacks them on purpose.
BUILD_MODULES = frozenset({"torch", "onnx", "onnxslim", "onnxscript", "safetensors", "nncf", "matplotlib", "rich"})


def missing_build_module(error: BaseException) -> str | None:
    """The build-side library an ImportError is about, or None when it is about something else."""
    name = getattr(error, "name", None) or ""
    root = name.split(".")[0]
    return root if isinstance(error, ImportError) and root in BUILD_MODULES else None


class EdgeResNetGroup(click.Group):
    """Turns library errors and usage mistakes into one-line messages with exit code 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("standalone_mode", None)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError" and error.ctx is not None:
                click.echo(error.ctx.get_help())  # a bare `edgeresnet` asks for the overview, not an error
                sys.exit(0)
            hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
            click.echo(f"error: {printable(one_line(error.format_message()))}{hint}", err=True)
            sys.exit(USER_ERROR_EXIT)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (EdgeResNetError, OSError) as error:
            # OSError here is the environment refusing a user's path (permissions, a full disk, a
            # directory where a file belongs): a one-line message, like any other user mistake.
            if ctx.obj and ctx.obj.get("debug"):
                raise
            text = describe_os_error(error) if isinstance(error, OSError) else one_line(error)
            click.echo(f"error: {printable(text)}", err=True)  # messages quote names from files anyone may write
            ctx.exit(USER_ERROR_EXIT)
        except ImportError as error:
            missing = missing_build_module(error)
            if missing is None or (ctx.obj and ctx.obj.get("debug")):
                raise
            command = ctx.invoked_subcommand or "this command"
            click.echo(f"error: `edgeresnet {command}` needs the build tools ({missing} is not installed): "
                       "pip install 'edgeresnet[build]'", err=True)
            ctx.exit(USER_ERROR_EXIT)


class ModelNameType(click.ParamType):
    """An architecture name from the registry; unknown names fail with the closest suggestions."""

    name = "MODEL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from edgeresnet.models import get_model_config

        try:
            get_model_config(str(value))  # cheap: builds the config, not the model
            return str(value)
        except EdgeResNetError as error:
            self.fail(str(error), param, ctx)


class FiniteFloatRange(click.FloatRange):
    """click's ``FloatRange`` without its hole: ``nan`` passes every comparison, so it is refused first."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{printable(value)} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def number_range(kind: type[int | float], low: float, high: float, *, low_open: bool = False) -> click.ParamType:
    """A bounded whole or real number: every numeric option has a range (``--epochs 10**18`` would start a
    run without end), and a real one is finite. The range shows in ``--help``."""
    if kind is int:
        return click.IntRange(int(low), int(high))
    return FiniteFloatRange(low, high, min_open=low_open)


# The first version's name, for code written against it.
NumberType = number_range


class ThreadsType(click.IntRange):
    """Threads: 1 up to a few per CPU of this machine (runtimes allocate per thread; 100,000 crash them)."""

    def __init__(self) -> None:
        super().__init__(1, None)

    def _describe_range(self) -> str:
        return f"1 to {MAX_THREADS_PER_CPU} per CPU"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.INT.convert(value, param, ctx)
        if not 1 <= number <= max_threads():
            self.fail(f"{number} is not in the range 1<=x<={max_threads()} ({MAX_THREADS_PER_CPU} per CPU; this "
                      f"machine has {machine_cpus()})", param, ctx)
        return number


# The largest --input-size train/export accept: far above the classifiers they build (224-600 pixels).
MAX_CLI_INPUT_SIZE = 1024
# Working memory of training one image, as a multiple of its float32 input (activations of every layer
# kept for the backward pass); used only to refuse sizes no batch could train, before anything is allocated.
TRAIN_WORKING_SET = 64


class InputSizeType(click.IntRange):
    """An input side in pixels, bounded and checked against the memory training one image needs."""

    def __init__(self) -> None:
        super().__init__(28, MAX_CLI_INPUT_SIZE)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        size = super().convert(value, param, ctx)

        try:
            require_memory(TRAIN_WORKING_SET * tensor_bytes((1, 3, size, size)), what=f"a {size}×{size} input")
        except EdgeResNetError as error:
            self.fail(str(error), param, ctx)
        return size


# ONNX opsets the exporter can write: from 17 (the QDQ rules the project follows) to what the installed
# onnx and torch's exporter support.
MIN_OPSET = 17


def max_opset() -> int:
    """The newest opset both the installed onnx package and torch's TorchScript exporter write."""
    import onnx

    newest = int(onnx.defs.onnx_opset_version())
    try:
        from torch.onnx import _constants

        newest = min(newest, int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET)))
    except (ImportError, AttributeError):  # no torch: export says so itself
        pass
    return newest


class OpsetType(click.IntRange):
    """17 up to the newest opset the installed onnx and torch exporter write (looked up only above 17)."""

    def __init__(self) -> None:
        super().__init__(MIN_OPSET, None)

    def _describe_range(self) -> str:
        return f"x>={MIN_OPSET}, up to what the installed onnx and torch exporter write"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number > MIN_OPSET and number > (newest := max_opset()):
            self.fail(f"{number} is not in the range {MIN_OPSET}<=x<={newest} (the opsets the installed onnx and "
                      "torch exporter write)", param, ctx)
        return number


class ProgressEcho:
    """Prints a library's progress messages as ``· message`` lines on stderr.

    It remembers the warnings among them, so that a command's closing summary can leave out a warning
    the user has already seen (each warning is printed once).
    """

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def __call__(self, message: str) -> None:
        if message.startswith("warning: "):
            self.warned.add(message.removeprefix("warning: "))
        click.echo(f"· {printable(message)}", err=True)


class IntListType(click.ParamType):
    """A comma-separated list of positive integers up to ``high``, e.g. ``1,8,32``."""

    name = "N[,N...]"

    def __init__(self, high: int = 4096, max_items: int = 64) -> None:
        self.high, self.max_items = high, max_items

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            numbers = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{printable(value)!r} is not a comma-separated list of integers", param, ctx)
        if not numbers or any(not 1 <= n <= self.high for n in numbers) or len(numbers) > self.max_items:
            self.fail(f"{printable(value)!r} must list 1 to {self.max_items} integers from 1 to {self.high}",
                      param, ctx)
        return numbers


@click.group(cls=EdgeResNetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeresnet")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only print warnings and results.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Train, export, quantize, compile and benchmark ResNet classifiers for edge targets."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("nncf", "openvino", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
