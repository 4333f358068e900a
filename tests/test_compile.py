"""compile: OpenVINO IR bundles (FP32/FP16/INT8) that verify and predict like their source; the TensorRT
path's argument checks and its clear error without TensorRT; real engine bundles where TensorRT exists."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgeresnet.cli.deploy  # noqa: F401  (registers compile/predict/verify)
from edgeresnet.bundle import read_manifest, sha256_file
from edgeresnet.cli.core import cli
from edgeresnet.compile import compile_bundle
from edgeresnet.errors import BackendUnavailableError, BundleError, EdgeResNetError, ExportError
from edgeresnet.runtime.classifier import Classifier
from edgeresnet.verify import verify_bundle
from tests.runtime.tiny_bundle import SPEC, blob_images, make_bundle, rewrite_manifest, tiny_model

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
IMAGES = list(blob_images(12, seed=41)[0])
# INT8 against FP32 is judged on more images: on 12, one unlucky image is already 8 points.
AGREEMENT_IMAGES = list(blob_images(120, seed=43)[0])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgeresnet.calibration import calibrate

    root = tmp_path_factory.mktemp("compile")
    model = tiny_model()
    batch = SPEC.apply_batch(blob_images(64, seed=42)[0])
    table = calibrate(
        model.onnx, [batch], method="minmax", data_hash=hashlib.sha256(batch.tobytes()).hexdigest()
    )
    table_path = table.save(root / "calibration.json")
    companions = {"model_fp32.onnx": model.onnx, "calibration.json": table_path}
    return {
        "fp32": make_bundle(root / "fp32", model.onnx),
        "int8": make_bundle(root / "int8", model.qdq, precision="int8", extra_files=companions),
    }


@pytest.mark.parametrize(
    ("source", "precision"), [("fp32", "fp32"), ("fp32", "fp16"), ("int8", "int8"), ("int8", "fp32")]
)
def test_openvino_bundles_verify_and_predict_like_their_source(
    bundles: dict[str, Path], tmp_path: Path, source: str, precision: str
) -> None:
    pytest.importorskip("openvino")
    out = compile_bundle(
        bundles[source],
        target="openvino",
        precision=precision,  # type: ignore[arg-type]
        output=tmp_path / "ov",
    )
    manifest, origin = read_manifest(out), read_manifest(bundles[source])
    assert (manifest.target, manifest.precision, manifest.model_file) == ("openvino", precision, "model.xml")
    assert set(manifest.files) == {"model.xml", "model.bin", "golden.npz"}
    assert manifest.preprocessing == origin.preprocessing and manifest.class_names == origin.class_names
    parent = manifest.provenance
    assert parent.parent_manifest_sha256 == sha256_file(bundles[source] / "manifest.json")
    assert parent.parent_bundle == str(bundles[source].resolve())
    assert (manifest.engine.runtime, manifest.engine.device, parent.parent_precision) == ("openvino", "CPU", source)
    assert parent.parent_model == (
        "model_fp32.onnx" if (source, precision) == ("int8", "fp32") else "model.onnx"
    )
    assert manifest.parity[-1].top1_agreement_pct >= 90 and manifest.parity[-1].inputs == "golden inputs"
    assert "versions" in manifest.build
    assert manifest.calibration == (origin.calibration if precision == "int8" else None)
    assert verify_bundle(out).passed
    with Classifier.load(out) as compiled, Classifier.load(bundles[source]) as original:
        ours = compiled.predict(AGREEMENT_IMAGES, top_k=1)
        theirs = original.predict(AGREEMENT_IMAGES, top_k=1)
    agreement = np.mean([a[0].index == b[0].index for a, b in zip(ours, theirs)])
    assert agreement >= (0.9 if "int8" in (source, precision) else 1.0)


def test_openvino_int8_is_rebuilt_from_the_calibration_table(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("openvino")
    import shutil

    bundle = Path(shutil.copytree(bundles["int8"], tmp_path / "no-qdq"))
    # The same bundle as an FP32 one that carries a table: no QDQ model, so compile makes one from the table.
    rewrite_manifest(bundle, lambda r: r.update(precision="fp32", model_file="model_fp32.onnx"))
    out = compile_bundle(bundle, target="openvino", precision="int8", output=tmp_path / "ov-int8")
    manifest = read_manifest(out)
    assert manifest.precision == "int8" and manifest.provenance.parent_model.startswith(
        "model_int8_"
    )
    assert verify_bundle(out).passed


def test_missing_inputs_and_bad_arguments_are_one_line_errors(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    cases = [
        (
            {"target": "openvino", "precision": "int8"},
            ExportError,
            "has no INT8 ONNX model .*export it with --int8",
        ),
        (
            {"target": "onnxruntime", "precision": "fp32"},
            ExportError,
            "compile targets are openvino, tensorrt",
        ),
        ({"target": "openvino", "precision": "int4"}, ExportError, "precision must be one of"),
        (
            {"target": "openvino", "precision": "fp32", "max_batch": 4},
            ExportError,
            "max_batch: only for --target tensorrt",
        ),
        (
            {"target": "tensorrt", "precision": "fp32", "opt_batch": 8, "max_batch": 4},
            ExportError,
            "between 1 and --max-batch",
        ),
        (
            {"target": "tensorrt", "precision": "fp32", "max_batchsize": 4},
            ExportError,
            "unknown TensorRT option",
        ),
        (
            {"target": "tensorrt", "precision": "fp32", "device": "CPU"},
            EdgeResNetError,
            "TensorRT runs on CUDA GPUs only",
        ),
    ]
    for arguments, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            compile_bundle(bundles["fp32"], output=tmp_path / "out", **arguments)
        assert "\n" not in str(caught.value)
    with pytest.raises(ExportError, match="new directory"):
        compile_bundle(bundles["fp32"], target="openvino", precision="fp32", output=bundles["fp32"])
    assert not (tmp_path / "out").exists()


def test_a_tampered_source_is_not_compiled(bundles: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    bundle = Path(shutil.copytree(bundles["fp32"], tmp_path / "src"))
    (bundle / "model.onnx").write_bytes((bundle / "model.onnx").read_bytes()[:-10])
    with pytest.raises(BundleError, match="model.onnx was modified"):
        compile_bundle(bundle, target="openvino", precision="fp32", output=tmp_path / "out")


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed")
@pytest.mark.parametrize(
    ("source", "precision", "carry"),
    [
        ("fp32", "fp16", "the bundle's ONNX (model.onnx)"),
        ("int8", "int8", "the bundle's QDQ ONNX (model.onnx) plus calibration.json"),
    ],
)
def test_tensorrt_without_tensorrt_says_what_to_carry(
    bundles: dict[str, Path], tmp_path: Path, source: str, precision: str, carry: str
) -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        compile_bundle(
            bundles[source],
            target="tensorrt",
            precision=precision,
            output=tmp_path / "trt",  # type: ignore[arg-type]
            max_batch=8,
        )
    assert str(caught.value) == (
        f"TensorRT is not installed here: carry {carry} to the target device and run "
        "`edgeresnet compile BUNDLE --target tensorrt` there"
    )
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no staging left


def test_tensorrt_int8_needs_a_qdq_that_follows_its_rules_or_a_table(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    bundle = Path(shutil.copytree(bundles["int8"], tmp_path / "ort-qdq"))
    for name in ("calibration.json", "model_fp32.onnx"):
        (bundle / name).unlink()
    rewrite_manifest(bundle, lambda r: [r["files"].pop(n) for n in ("calibration.json", "model_fp32.onnx")])
    # onnxruntime's QDQ (uint8 activations with zero points) breaks TensorRT's rules; nothing to rebuild from.
    with pytest.raises(ExportError, match="does not follow TensorRT's QDQ rules .* no calibration.json"):
        compile_bundle(bundle, target="tensorrt", precision="int8", output=tmp_path / "trt")


# --- the accuracy gate survives compile ------------------------------------------------------------


def _first_conv() -> str:
    import onnx

    return next(node.name for node in onnx.load(str(tiny_model().onnx)).graph.node if node.op_type == "Conv")


class _BuilderCalled(Exception):
    """Raised by the stand-in engine builder once it has seen the ONNX it was given."""


@pytest.fixture()
def engine_builds(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """compile_tensorrt up to the engine build, with TensorRT stood in for: what the builder received."""
    from edgeresnet.backends.tensorrt import build as trt_export
    from edgeresnet.calibration import check_tensorrt_rules, inspect_qdq

    seen: list[dict] = []

    def build_engine(onnx_path: Path, engine_path: Path, **_: object) -> None:
        seen.append({"name": Path(onnx_path).name, "float_nodes": inspect_qdq(onnx_path)["float_nodes"],
                     "problems": check_tensorrt_rules(onnx_path, float_nodes=[_first_conv()])})
        raise _BuilderCalled

    monkeypatch.setattr(trt_export, "require_tensorrt_gpu", lambda carry: (None, None))
    monkeypatch.setattr(trt_export, "build_engine", build_engine)
    return seen


def _gated_bundle(bundles: dict[str, Path], destination: Path, qdq: Path) -> Path:
    """An INT8 bundle whose accuracy gate kept the first Conv in float, as the export records it."""
    companions = {name: bundles["int8"] / name for name in ("model_fp32.onnx", "calibration.json")}
    bundle = make_bundle(destination, qdq, precision="int8", extra_files=companions)
    rewrite_manifest(bundle, lambda r: r.update(quantization={"float_nodes": [_first_conv()]}))
    return bundle


def test_tensorrt_int8_keeps_the_gates_float_layers(
    bundles: dict[str, Path], tmp_path: Path, engine_builds: list[dict]
) -> None:
    from edgeresnet.calibration import CalibrationTable, check_tensorrt_rules, quantize_qdq

    table = CalibrationTable.load(bundles["int8"] / "calibration.json")
    qdq = tmp_path / "gated.onnx"
    quantize_qdq(tiny_model().onnx, table, qdq, flavour="tensorrt", exclude_nodes=[_first_conv()])
    assert check_tensorrt_rules(qdq)  # without the gate's record, the float Conv reads as a violation
    # A TensorRT QDQ from the gate is the artifact: built as it is, not rebuilt from the table.
    with pytest.raises(_BuilderCalled):
        compile_bundle(_gated_bundle(bundles, tmp_path / "trt-qdq", qdq), target="tensorrt", precision="int8",
                       output=tmp_path / "out")
    assert engine_builds[-1]["name"] == "model.onnx" and _first_conv() in engine_builds[-1]["float_nodes"]
    # onnxruntime's QDQ breaks TensorRT's rules, so it is rebuilt from the table: with the same layer float.
    with pytest.raises(_BuilderCalled):
        compile_bundle(_gated_bundle(bundles, tmp_path / "ort-qdq", tiny_model().qdq), target="tensorrt",
                       precision="int8", output=tmp_path / "out")
    rebuilt = engine_builds[-1]
    assert rebuilt["name"] == "model_int8_tensorrt.onnx" and rebuilt["problems"] == []
    assert _first_conv() in rebuilt["float_nodes"]
    assert not (tmp_path / "out").exists()


def test_openvino_int8_from_the_table_keeps_the_gates_float_layers(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("openvino")
    import shutil

    def quantize_ops(float_nodes: list[str]) -> int:
        bundle = Path(shutil.copytree(bundles["int8"], tmp_path / f"src{len(float_nodes)}"))
        rewrite_manifest(bundle, lambda r: r.update(precision="fp32", model_file="model_fp32.onnx",
                                                    quantization={"float_nodes": float_nodes}))
        out = compile_bundle(bundle, target="openvino", precision="int8", output=tmp_path / f"ov{len(float_nodes)}")
        manifest = read_manifest(out)
        assert manifest.provenance.parent_model == "model_int8_onnxruntime.onnx"
        assert manifest.quantization.float_nodes == tuple(float_nodes) and verify_bundle(out).passed
        return (out / "model.xml").read_text().count('type="FakeQuantize"')

    # The float Conv reads float data: its input's FakeQuantize is gone from the IR.
    assert quantize_ops([_first_conv()]) < quantize_ops([])


def test_an_nncf_openvino_int8_bundle_is_its_own_int8_artifact(bundles: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from edgeresnet.backends.openvino.convert import convert_qdq_to_ir
    from edgeresnet.backends.openvino.runner import OpenVinoRunner
    from tests.runtime.tiny_bundle import golden_inputs

    # A stand-in for the NNCF IR the export chose (NNCF itself takes too long for a unit test).
    xml = convert_qdq_to_ir(tiny_model().qdq, tmp_path / "nncf" / "model.xml")
    with OpenVinoRunner(xml, precision="int8") as runner:
        outputs = runner.infer(golden_inputs())
    companions = {"model.bin": xml.with_suffix(".bin"),
                  **{name: bundles["int8"] / name for name in ("model_fp32.onnx", "calibration.json")}}
    source = make_bundle(tmp_path / "openvino-int8", xml, precision="int8", target="openvino",
                         extra_files=companions, outputs=outputs)
    rewrite_manifest(source, lambda r: r.update(quantization={"chosen": "nncf"}))
    out = compile_bundle(source, target="openvino", precision="int8", output=tmp_path / "ov", device="CPU")
    manifest = read_manifest(out)
    assert manifest.provenance.parent_model == "model.xml"  # reused, not rebuilt from the table
    assert manifest.files["model.bin"] == read_manifest(source).files["model.bin"]
    assert manifest.quantization.chosen == "nncf" and verify_bundle(out).passed


def test_compile_never_loses_files_the_user_added_to_its_output(bundles: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    command = ["compile", str(bundles["fp32"]), "--target", "openvino", "-o", str(tmp_path / "ov")]
    assert CliRunner().invoke(cli, command).exit_code == 0
    (tmp_path / "ov" / "deploy-notes.md").write_text("added by the user")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ov").iterdir()}
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(cli, [*command, *extra])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
        assert "edgeresnet did not write (deploy-notes.md)" in result.stderr
        assert {p.name: p.read_bytes() for p in (tmp_path / "ov").iterdir()} == before
    (tmp_path / "ov" / "deploy-notes.md").unlink()
    plain = CliRunner().invoke(cli, command)
    assert plain.exit_code == 2 and "already exists: pass --overwrite" in plain.stderr
    assert CliRunner().invoke(cli, [*command, "--overwrite"]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ov"], "no staging, lock or .old left beside it"


def test_compile_cli(bundles: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["compile", str(bundles["fp32"]), "--target", "openvino", "-o", str(tmp_path / "ov")]
    )
    assert result.exit_code == 0, result.output
    assert (
        "compiled openvino fp32 bundle" in result.stdout
        and read_manifest(tmp_path / "ov").precision == "fp32"
    )
    wrong = runner.invoke(
        cli,
        [
            "compile",
            str(bundles["fp32"]),
            "--target",
            "openvino",
            "--max-batch",
            "4",
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert wrong.exit_code == 2 and "error: --max-batch: only for --target tensorrt" in wrong.stderr
    missing = runner.invoke(
        cli, ["compile", str(tmp_path / "nope"), "--target", "openvino", "-o", str(tmp_path / "y")]
    )
    assert (
        missing.exit_code == 2 and "bundle not found" in missing.stderr and "Traceback" not in missing.output
    )
    if not HAS_TENSORRT:
        trt = runner.invoke(
            cli,
            [
                "compile",
                str(bundles["int8"]),
                "--target",
                "tensorrt",
                "--max-batch",
                "8",
                "--hardware-compatibility",
                "ampere+",
                "-o",
                str(tmp_path / "trt"),
            ],
        )
        assert trt.exit_code == 2 and trt.stderr.startswith("error: TensorRT is not installed here: carry")


@pytest.mark.tensorrt
@pytest.mark.parametrize(("source", "precision"), [("fp32", "fp32"), ("fp32", "fp16"), ("int8", "int8")])
def test_tensorrt_bundles_verify_and_predict(
    bundles: dict[str, Path], tmp_path: Path, source: str, precision: str
) -> None:
    out = compile_bundle(
        bundles[source],
        target="tensorrt",
        precision=precision,
        output=tmp_path / "trt",  # type: ignore[arg-type]
        max_batch=8,
        opt_batch=4,
    )
    manifest = read_manifest(out)
    assert manifest.engine is not None and manifest.engine.runtime == "tensorrt"
    record = manifest.engine.compatibility_record()
    assert manifest.model_file == "model.engine" and {"model.onnx", "timing.cache"} <= set(manifest.files)
    assert record["compute_capability"] and record["version"] and record["layer_precisions"]
    assert record["layer_precisions"].get(precision.upper(), 0) > 0
    assert verify_bundle(out).passed
    with Classifier.load(out) as compiled:
        assert len(compiled.predict(IMAGES, top_k=1)) == len(IMAGES)
