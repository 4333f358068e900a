"""Every sample output in the README and docs/ is what the current code prints.

A fenced block right after ``<!-- checked by tests/test_docs.py -->`` holds ``$ edgeresnet ...`` commands,
each followed by its output. The test runs each command (in a scratch directory that the document's setup
prepares) and compares the output exactly; ``<!-- checked by tests/test_docs.py: figures vary -->`` compares
with every number masked (timings, versions, |Δlogit|). Every other ``$ edgeresnet`` sample must be listed in
UNCHECKED with the reason it cannot run here. After an intended change, regenerate the outputs with

    python tests/test_docs.py --write
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"<!-- checked by tests/test_docs\.py(?P<vary>: figures vary)? -->\n```[a-z]*\n(?P<body>.*?)```",
                  re.DOTALL)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")
WIDTH = 80  # the terminal width the samples are rendered at

# `$ edgeresnet` samples that cannot run here, with the reason; a new sample goes in a checked block or here.
UNCHECKED = {
    "edgeresnet predict export/onnxruntime-fp32 one-pixel.png --top-k 1":
        "needs the bundle benchmarks/ood.py trains; tests/runtime/test_ood.py asserts the note line",
    "edgeresnet train --model resnet20 --data fashion-mnist":
        "needs an install without torch; tests/test_package.py asserts the message in such a venv",
    "edgeresnet compile runs/r20-export/tensorrt-int8 --target tensorrt --output runs/r20-trt":
        "needs a calibrated INT8 export (minutes); the message is asserted by tests/test_compile.py",
}


@dataclass(frozen=True)
class Sample:
    document: Path
    command: str  # without the leading "$ "
    output: str
    figures_vary: bool


def samples(document: Path) -> list[Sample]:
    found = []
    for match in MARK.finditer(document.read_text(encoding="utf-8")):
        for command, output in _split(match.group("body")):
            found.append(Sample(document, command, output, bool(match.group("vary"))))
    return found


def _split(body: str) -> Iterator[tuple[str, str]]:
    command, lines = None, []
    for line in body.splitlines():
        if line.startswith("$ "):
            if command is not None:
                yield command, "\n".join(lines)
            command, lines = line[2:], []
        else:
            lines.append(line)
    if command is not None:
        yield command, "\n".join(lines)


def run_sample(command: str, cwd: Path) -> str:
    """The command's stdout and stderr as a terminal shows them, run from ``cwd``."""
    from click.testing import CliRunner

    from edgeresnet.cli import cli

    words = shlex.split(command)
    head = None
    if "|" in words:  # only `| head -N` is used in the docs
        pipe = words.index("|")
        head, words = int(words[pipe + 2].lstrip("-")), words[:pipe]
    assert words[0] == "edgeresnet", command
    with _working_directory(cwd):
        result = CliRunner().invoke(cli, words[1:], prog_name="edgeresnet", terminal_width=WIDTH)
    # Paths as the user typed them (some messages print them resolved); no trailing blanks (rich pads lines).
    text = result.output.replace(f"{cwd.resolve()}/", "").replace(f"{cwd}/", "")
    lines = [line.rstrip() for line in text.rstrip("\n").splitlines()]
    return "\n".join(lines[:head] if head else lines)


def masked(text: str) -> str:
    return NUMBER.sub("N", text)


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


# --- what a document's samples expect to find in their working directory ------------------------------


def _weights(cwd: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from edgeresnet import create_model

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(cwd / "r20.safetensors"))


def _export_setup(cwd: Path) -> None:
    _weights(cwd)
    run_sample("edgeresnet export resnet20 --weights r20.safetensors --output runs/x --target onnxruntime", cwd)
    (cwd / "runs" / "y" / "onnxruntime-fp32").mkdir(parents=True)  # a directory of the user's


def _compile_setup(cwd: Path) -> None:
    _weights(cwd)
    run_sample("edgeresnet export resnet20 --weights r20.safetensors --output runs/r20-export --target openvino", cwd)


def _verify_setup(cwd: Path) -> None:
    _compile_setup(cwd)
    run_sample("edgeresnet compile runs/r20-export/openvino-fp32 --target openvino --precision fp16 "
               "--output runs/r20-ov-fp16", cwd)


def _predict_setup(cwd: Path) -> None:
    scans = cwd / "scans"
    (scans / "2024").mkdir(parents=True)
    for name in ("a.heic", "b.heic", "2024/c.heic", "notes.txt"):
        (scans / name).write_bytes(b"not an image")


SETUPS: dict[str, Callable[[Path], None]] = {
    "export.md": _export_setup, "compile.md": _compile_setup, "verify.md": _verify_setup,
    "predict.md": _predict_setup,
}
# Documents whose setup trains or exports a model: seconds, not milliseconds.
SLOW = {"export.md", "compile.md", "verify.md"}


def _outputs(document: Path) -> list[tuple[Sample, str]]:
    with tempfile.TemporaryDirectory(prefix="edgeresnet-docs-") as scratch:
        cwd = Path(scratch)
        setup = SETUPS.get(document.name)
        if setup is not None:
            setup(cwd)
        return [(sample, run_sample(sample.command, cwd)) for sample in samples(document)]


def _documents_with_samples() -> list[pytest.param]:
    return [pytest.param(document, id=document.name,
                         marks=[pytest.mark.slow] if document.name in SLOW else [])
            for document in DOCUMENTS if samples(document)]


@pytest.mark.parametrize("document", _documents_with_samples())
def test_sample_outputs_are_what_the_code_prints(document: Path) -> None:
    for sample, actual in _outputs(document):
        if sample.figures_vary:
            assert masked(actual) == masked(sample.output), f"{document.name}: $ {sample.command}\n{actual}"
        else:
            assert actual == sample.output, f"{document.name}: $ {sample.command}\n{actual}"


def test_every_command_sample_is_checked_or_explained() -> None:
    checked = {sample.command for document in DOCUMENTS for sample in samples(document)}
    shown = {line.strip()[2:] for document in DOCUMENTS for line in document.read_text(encoding="utf-8").splitlines()
             if line.strip().startswith("$ edgeresnet")}
    assert shown - checked - set(UNCHECKED) == set()
    assert set(UNCHECKED) <= shown, "an UNCHECKED sample is no longer in the docs"


def test_every_command_documents_its_options() -> None:
    from edgeresnet.cli import cli

    # A new command: add a checked `$ edgeresnet NAME --help` block to its page, then run --write.
    documented = {sample.command for document in DOCUMENTS for sample in samples(document)}
    assert {f"edgeresnet {command} --help" for command in cli.commands} <= documented


def test_the_readme_keeps_the_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme and "make demo" in readme and "make test" in ci
    for link in re.findall(r"\]\(([^)#]+)", readme):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


def test_links_between_docs_resolve() -> None:
    for document in DOCUMENTS:
        for link in re.findall(r"\]\(([^)#]+)", document.read_text(encoding="utf-8")):
            if not link.startswith("http"):
                assert (document.parent / link).exists(), f"{document.name}: {link}"


def _regenerated(match: re.Match[str], outputs: dict[tuple[str, str], str]) -> str:
    body = "".join(f"$ {command}\n{outputs[(command, output)]}\n" for command, output in _split(match.group("body")))
    return match.group(0).replace(match.group("body"), body)


def write() -> None:
    """Regenerate every checked block's outputs in place."""
    for document in DOCUMENTS:
        if not samples(document):
            continue
        outputs = {(s.command, s.output): actual for s, actual in _outputs(document)}
        text = document.read_text(encoding="utf-8")
        document.write_text(MARK.sub(lambda match, outputs=outputs: _regenerated(match, outputs), text), encoding="utf-8")
        print(f"rewrote {document.relative_to(ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_docs.py --write")
    sys.path.insert(0, str(ROOT))
    write()
    subprocess.run(["git", "diff", "--stat", "--", "README.md", "docs"], cwd=ROOT, check=False)
