from __future__ import annotations

import subprocess
import sys

import pytest

from edgeresnet.data import open_source
from edgeresnet.errors import DatasetError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty data source"),
        ("cifar10", "unknown data source 'cifar10'"),
        ("fashion_mnist", "did you mean fashion-mnist?"),
        ("mnist", "did you mean fashion-mnist?"),
        ("/no/such/dir", "no such file or directory"),
    ],
)
def test_bad_strings_list_the_accepted_forms(text: str, expected: str) -> None:
    with pytest.raises(DatasetError) as error:
        open_source(text)
    message = str(error.value)
    assert expected in message
    assert (
        "accepted: fashion-mnist; fashion-mnist:/dir" in message and ".npz" in message and "\n" not in message
    )


def test_a_file_that_is_not_npz(tmp_path) -> None:
    path = tmp_path / "images.tar"
    path.write_bytes(b"x")
    with pytest.raises(DatasetError, match="not an .npz"):
        open_source(str(path))


def test_import_does_not_pull_in_torch() -> None:
    code = "import sys, edgeresnet.data; print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
