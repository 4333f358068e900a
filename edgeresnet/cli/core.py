"""The `edgeresnet` command line: thin Click adapters over the library.

Each command's docstring is its help. A user mistake (any EdgeResNetError) becomes one line on
stderr and exit code 2; ``--debug`` shows the traceback. Heavy imports happen inside commands so
``edgeresnet --help`` stays instant.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from edgeresnet import __version__
from edgeresnet.errors import EdgeResNetError, describe_os_error, first_line

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
            click.echo(f"error: {first_line(error.format_message())}{hint}", err=True)
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
            text = describe_os_error(error) if isinstance(error, OSError) else first_line(error)
            click.echo(f"error: {text}", err=True)
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
        click.echo(f"· {message}", err=True)


class IntListType(click.ParamType):
    """A comma-separated list of positive integers, e.g. ``1,8,32``."""

    name = "N[,N...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            numbers = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
        if not numbers or any(n < 1 for n in numbers):
            self.fail(f"{value!r} must list positive integers", param, ctx)
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
