"""`edgeresnet serve-repo` and `serve` through Click: output, verify, one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edgeresnet.cli import cli
from tests.serve.bundles import onnx_bundle, tensorrt_bundle


def test_serve_repo_writes_prints_the_server_command_and_verifies(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    result = CliRunner().invoke(cli, ["serve-repo", str(onnx_bundle()), str(tensorrt_bundle()), "--output", str(repo),
                                      "--name", "classifier", "--name", "classifier-trt", "--max-batch", "8"])
    assert result.exit_code == 0, result.output
    assert "classifier: onnxruntime, max_batch_size 8" in result.output
    assert (f"tritonserver --model-repository {repo.absolute()} --backend-config=tensorrt,version-compatible=true"
            in result.output)
    verified = CliRunner().invoke(cli, ["serve-repo", "--verify", str(repo)])
    assert verified.exit_code == 0, verified.output
    assert "classifier: OK" in verified.output and "classifier-trt: OK" in verified.output

    (repo / "classifier/labels.txt").write_text("relabelled\n")
    failed = CliRunner().invoke(cli, ["serve-repo", "--verify", str(repo), "--json"])
    assert failed.exit_code == 2
    assert '"labels.txt was modified (sha256 differs from the record)"' in failed.output
    assert failed.output.strip().splitlines()[-1] == f"error: repository {repo} fails its checks: classifier"


def test_serve_repo_usage_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    for args, message in (
        (["serve-repo", str(onnx_bundle())], "give the bundles and --output REPO"),
        (["serve-repo", "--verify", str(tmp_path), str(onnx_bundle())], "--verify REPO takes no bundles"),
        (["serve-repo", "--verify", str(tmp_path / "absent")], "model repository not found"),
        (["serve-repo", str(tmp_path / "absent"), "--output", str(tmp_path / "r")], "bundle not found"),
        (["serve-repo", str(onnx_bundle()), "--output", str(tmp_path / "r"), "--name", "a", "--name", "b"],
         "2 names given for 1 bundles"),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_serve_refuses_bad_options_before_loading_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", str(onnx_bundle()), "--http-port", "9000", "--grpc-port", "9000"])
    assert result.exit_code == 2 and "--http-port and --grpc-port must differ" in result.output
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "absent"), "--http-port", "0", "--grpc-port", "0"])
    assert result.exit_code == 2 and "error:" in result.output
