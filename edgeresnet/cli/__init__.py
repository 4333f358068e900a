"""The `edgeresnet` command line: thin Click adapters over the library, one module per command group.

Each command module registers itself on :data:`cli` when imported; heavy libraries are imported
inside the commands so ``edgeresnet --help`` stays instant.
"""

from edgeresnet.cli import benchmark, deploy, export, models, pipeline, serve, train  # noqa: F401  (registers the commands)
from edgeresnet.cli.core import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="edgeresnet")
