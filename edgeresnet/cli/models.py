"""`edgeresnet models`: the registry as a table or JSON."""

from __future__ import annotations

import json

import click

from edgeresnet import list_models
from edgeresnet.cli.core import cli
from edgeresnet.errors import EdgeResNetError


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects instead of a table.")
@click.option("--family", default=None, help="Only list this family (e.g. resnet, resnet-cifar, resnext).")
def models_command(as_json: bool, family: str | None) -> None:
    """List every registered architecture: family, parameters, MACs and default input size.

    Parameters are counted with 1000 classes (10 for the 32×32 CIFAR networks) and 3 input channels; MACs
    at the default input size.
    """
    infos = [info for info in list_models() if family is None or info.family == family]
    if family is not None and not infos:
        families = sorted({info.family for info in list_models()})
        raise EdgeResNetError(f"unknown family {family!r}; families: {', '.join(families)}")
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edgeresnet models")
    for column in ("name", "family", "params", "MACs", "input"):
        table.add_column(column, justify="right" if column in ("params", "MACs", "input") else "left")
    for info in infos:
        table.add_row(info.name, info.family, f"{info.params / 1e6:.2f}M", _format_macs(info.macs),
                      f"{info.input_size}×{info.input_size}")
    Console(width=100).print(table)


def _format_macs(macs: int) -> str:
    return f"{macs / 1e9:.2f}G" if macs >= 1e9 else f"{macs / 1e6:.1f}M"
