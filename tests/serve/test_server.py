"""`edgeresnet serve` with the real tritonclient over HTTP and gRPC: the Classifier's labels, batching, errors, SIGTERM."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

# The server runs in a child process: kserve and tritonclient.grpc register the same protobuf names
# ("inference.*"), so they cannot share one interpreter, and this process is the client's.
if importlib.util.find_spec("kserve") is None:
    pytest.skip("the serve extra (kserve) is not installed", allow_module_level=True)
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException

from edgeresnet.runtime import Classifier
from tests.runtime.tiny_bundle import SIZE, SPEC, blob_images
from tests.serve.bundles import onnx_bundle
from tests.serve.server_process import REPO_ROOT, ServerProcess, start_server

MODEL = "tiny"
# Long enough that requests sent together are batched together on a loaded 2-core host.
QUEUE_DELAY_US = 150_000


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Held-out images as files: PNGs at the input size and JPEGs the server must resize."""
    from PIL import Image

    root = tmp_path_factory.mktemp("held-out")
    images, _ = blob_images(40, seed=2024)
    paths = []
    for index, image in enumerate(images):
        if index % 4 == 3:
            path = root / f"{index}.jpg"
            Image.fromarray(image).resize((3 * SIZE, 2 * SIZE)).save(path, quality=92)
        else:
            path = root / f"{index}.png"
            Image.fromarray(image).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    running = start_server([str(onnx_bundle()), "--name", MODEL, "--max-batch", "8",
                            "--max-queue-delay-us", str(QUEUE_DELAY_US)])
    yield running
    running.stop(10)


@pytest.fixture(scope="module")
def expected(held_out: list[Path]) -> list[list[tuple[str, float]]]:
    with Classifier.load(onnx_bundle()) as classifier:
        return [[(p.label, p.probability) for p in row] for row in classifier.predict(held_out, top_k=3)]


def _image_input(module: object, paths: list[Path]) -> object:
    data = np.array([path.read_bytes() for path in paths], dtype=np.object_)
    tensor = module.InferInput("image", [len(paths)], "BYTES")  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(data)
    return tensor


def _text(label: bytes | str) -> str:
    # BYTES come back as bytes in binary form and as str when KServe answers in JSON
    return label.decode() if isinstance(label, bytes) else str(label)


def _check(result: object, expected: list[list[tuple[str, float]]]) -> None:
    labels = result.as_numpy("labels")  # type: ignore[attr-defined]
    probabilities = result.as_numpy("probabilities")  # type: ignore[attr-defined]
    assert labels.shape == (len(expected), 3)
    assert [[_text(label) for label in row] for row in labels] == [[label for label, _ in row] for row in expected]
    np.testing.assert_allclose(probabilities, [[p for _, p in row] for row in expected], atol=1e-5)


def test_http_and_grpc_give_the_classifiers_labels_on_every_held_out_image(
        server: ServerProcess, held_out: list[Path], expected: list[list[tuple[str, float]]]) -> None:
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    for start in range(0, len(held_out), 8):
        paths, want = held_out[start:start + 8], expected[start:start + 8]
        _check(http.infer(MODEL, [_image_input(httpclient, paths)], parameters={"top_k": 3}), want)
        _check(grpc.infer(MODEL, [_image_input(grpcclient, paths)], parameters={"top_k": 3}), want)
    # uint8 frames and preprocessed tensors: the other two inputs, on the same images
    frames = np.stack([SPEC.load(path) for path in held_out[:8]])
    pixels = grpcclient.InferInput("pixels", list(frames.shape), "UINT8")
    pixels.set_data_from_numpy(frames)
    _check(grpc.infer(MODEL, [pixels], parameters={"top_k": 3}), expected[:8])
    tensor = httpclient.InferInput("input", [8, 3, SIZE, SIZE], "FP32")
    tensor.set_data_from_numpy(SPEC.normalise(frames))
    _check(http.infer(MODEL, [tensor], parameters={"top_k": 3}), expected[:8])


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
        server: ServerProcess, held_out: list[Path], expected: list[list[tuple[str, float]]]) -> None:
    before = _batch_metric(server)

    def one(index: int) -> str:
        client = httpclient.InferenceServerClient(server.http)
        result = client.infer(MODEL, [_image_input(httpclient, [held_out[index]])], parameters={"top_k": 1})
        return _text(result.as_numpy("labels")[0, 0])

    with ThreadPoolExecutor(16) as pool:
        labels = list(pool.map(one, range(16)))
    assert labels == [row[0][0] for row in expected[:16]]
    after = _batch_metric(server)
    rows, calls = after[0] - before[0], after[1] - before[1]
    assert rows == 16
    assert calls < 16, "16 concurrent requests ran as 16 model calls: no dynamic batching"


def _batch_metric(server: ServerProcess) -> tuple[float, float]:
    text = urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        for suffix in ("_sum", "_count"):
            if line.startswith(f"edgeresnet_batch_rows{suffix}{{") and f'model="{MODEL}"' in line:
                values[suffix] = float(line.rsplit(" ", 1)[1])
    return values.get("_sum", 0.0), values.get("_count", 0.0)


def test_health_readiness_and_metadata(server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(MODEL)
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready(MODEL)
    assert not http.is_model_ready("no-such-model")
    inputs = {i["name"]: i for i in http.get_model_metadata(MODEL)["inputs"]}
    assert inputs["pixels"] == {"name": "pixels", "datatype": "UINT8", "shape": [-1, SIZE, SIZE, 3]}


def _bad_requests() -> list[tuple[str, object]]:
    frames = np.zeros((1, SIZE, SIZE, 3), np.uint8)
    cases: list[tuple[str, object]] = []

    def add(name: str, input_name: str, array: np.ndarray, datatype: str) -> None:
        cases.append((name, (input_name, array, datatype)))

    add("wrong input name", "picture", frames, "UINT8")
    add("wrong data type", "pixels", frames.astype(np.float32), "FP32")
    add("wrong shape", "pixels", np.zeros((1, 7, 7, 3), np.uint8), "UINT8")
    add("not an image", "image", np.array([b"this is not an image"], dtype=np.object_), "BYTES")
    add("too many items", "pixels", np.zeros((9, SIZE, SIZE, 3), np.uint8), "UINT8")
    return cases


@pytest.mark.parametrize("case", [name for name, _ in _bad_requests()])
def test_bad_requests_are_protocol_errors_and_the_server_keeps_serving(server: ServerProcess, case: str) -> None:
    input_name, array, datatype = dict(_bad_requests())[case]  # type: ignore[misc]
    for module, address in ((httpclient, server.http), (grpcclient, server.grpc)):
        client = module.InferenceServerClient(address)
        tensor = module.InferInput(input_name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        with pytest.raises(InferenceServerException) as error:
            client.infer(MODEL, [tensor])
        status = str(error.value.status())
        assert status in ("400", "StatusCode.INVALID_ARGUMENT"), (module.__name__, status, error.value)
        assert client.is_server_ready()


def test_malformed_http_bodies_and_parameters_get_400(server: ServerProcess) -> None:
    url = f"http://{server.http}/v2/models/{MODEL}/infer"
    overlong = json.dumps({"inputs": [{"name": "pixels", "shape": [1, SIZE, SIZE, 3], "datatype": "UINT8",
                                       "parameters": {"binary_data_size": 99999}}]}).encode()
    bodies = [(b"{not json", {}), (json.dumps({"inputs": "x"}).encode(), {}),
              (overlong + b"\0" * 16, {"Inference-Header-Content-Length": str(len(overlong))}),
              (overlong, {"Inference-Header-Content-Length": "-5"})]
    for body, headers in bodies:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=10)
        assert error.value.code in (400, 422), body  # 422: FastAPI's answer to a body that is not JSON
    client = httpclient.InferenceServerClient(server.http)
    tensor = httpclient.InferInput("pixels", [1, SIZE, SIZE, 3], "UINT8")
    tensor.set_data_from_numpy(np.zeros((1, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(InferenceServerException, match="top_k"):
        client.infer(MODEL, [tensor], parameters={"top_k": 0})
    assert client.is_server_ready()


def test_the_server_listens_on_the_loopback_only_and_its_models_cannot_be_unloaded(server: ServerProcess) -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process(server.process.pid)
    connections = getattr(process, "net_connections", None) or process.connections  # psutil < 6 spells it so
    listening = [c.laddr for c in connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert {address.port for address in listening} >= {int(server.http.rsplit(":", 1)[1]),
                                                        int(server.grpc.rsplit(":", 1)[1])}
    # gRPC's socket is IPv6 bound to the IPv4-mapped loopback (::ffff:127.0.0.1): still the loopback only
    assert {address.ip.removeprefix("::ffff:") for address in listening} == {"127.0.0.1"}
    request = urllib.request.Request(f"http://{server.http}/v2/repository/models/{MODEL}/unload", data=b"",
                                     method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 501
    assert httpclient.InferenceServerClient(server.http).is_model_ready(MODEL)


def test_a_busy_port_is_a_one_line_error(server: ServerProcess) -> None:
    port = server.http.rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "edgeresnet", "serve", str(onnx_bundle()), "--http-port", port,
                             "--grpc-port", "0"], check=False, capture_output=True, text=True, timeout=120,
                            cwd=REPO_ROOT,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_stops_the_server_cleanly(server: ServerProcess) -> None:
    """Last in this module: it stops the module's server."""
    assert server.process.poll() is None
    logged = len(server.stderr)  # KServe logs the protocol errors of earlier tests with their tracebacks
    server.process.send_signal(signal.SIGTERM)
    assert server.stop(timeout=30) == 0
    assert server.stdout[-1] == "stopped"
    assert not any("Traceback" in line for line in server.stderr[logged:]), "\n".join(server.stderr[logged:])
