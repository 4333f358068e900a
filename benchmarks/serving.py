"""Served vs embedded: `edgeresnet serve` under load from the real tritonclient, beside the in-process Classifier.

One run, one machine, one bundle:

* **in process**: ``Classifier.predict_frames`` on held-out evaluation images, batch 1 (p50/p99 latency,
  images/s) and batched at the server's max batch (images/s): the best an app embedding the bundle gets;
  measured before and after the server runs, so drift on the host shows;
* **agreement**: every held-out image sent as an encoded PNG over HTTP and over gRPC; the served top-1
  label must equal the in-process one on every image;
* **served**: ``edgeresnet serve`` in a child process on the loopback (dynamic batching, same threads),
  hit by 1, 8 and 32 concurrent clients (threads, one tritonclient each), one image per request
  (uint8 ``pixels``, or ``--input image`` for encoded PNGs), for a bounded time: images/s, p50 and p99
  latency per request, over HTTP and gRPC;
* the ratio the issue sets (served images/s at concurrency 32 / in-process batched images/s, target 0.8).

Clients and server share the machine (loopback only), so the served figures include the clients' cost.

    python benchmarks/serving.py --bundle runs/pipeline/bundles/onnxruntime-fp32          # the timed run (quiet host)
    python benchmarks/serving.py --bundle B --images 64 --seconds 1 --concurrency 1,2     # a bounded smoke run
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeresnet.atomic import atomic_write_json, atomic_write_text
from edgeresnet.data import open_source
from edgeresnet.environment import environment
from edgeresnet.runtime import Classifier
from tests.serve.server_process import ServerProcess, launch


def held_out(bundle: Path, data: str, count: int) -> tuple[np.ndarray, list[bytes]]:
    """Evaluation images at the bundle's input size (uint8 N×H×W×C) and the same images as PNG files."""
    with Classifier.load(bundle) as classifier:
        spec = classifier.spec
    images = open_source(data).split("evaluation").head(count)
    frames = np.stack([spec.pixels(images.raw(i)) for i in range(len(images))])
    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return frames, encoded


def stats(latencies_s: list[float], images: int, wall_s: float) -> dict[str, float]:
    ms = np.array(latencies_s) * 1e3
    return {"images_per_s": round(images / wall_s, 1), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "requests": len(latencies_s)}


def in_process(bundle: Path, frames: np.ndarray, *, batch: int, seconds: float, threads: int | None) -> dict[str, Any]:
    with Classifier.load(bundle, threads=threads) as classifier:
        classifier.predict_frames(frames[:batch])  # warm-up
        result = {}
        for name, size in (("batch1", 1), (f"batch{batch}", batch)):
            latencies, images, start, i = [], 0, time.perf_counter(), 0
            while time.perf_counter() - start < seconds:
                rows = np.take(frames, range(i, i + size), axis=0, mode="wrap")
                t0 = time.perf_counter()
                classifier.predict_frames(rows, top_k=1)
                latencies.append(time.perf_counter() - t0)
                images, i = images + size, i + size
            result[name] = stats(latencies, images, time.perf_counter() - start)
        labels = [row[0].label for s in range(0, len(frames), batch)
                  for row in classifier.predict_frames(frames[s:s + batch], top_k=1)]
    return {"figures": result, "labels": labels}


def agreement(server: ServerProcess, encoded: list[bytes], expected: list[str]) -> dict[str, Any]:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    result = {}
    for name, module, address in (("http", httpclient, server.http), ("grpc", grpcclient, server.grpc)):
        client, served = module.InferenceServerClient(address), []
        for start in range(0, len(encoded), 16):
            chunk = np.array(encoded[start:start + 16], dtype=np.object_)
            tensor = module.InferInput("image", [len(chunk)], "BYTES")
            tensor.set_data_from_numpy(chunk)
            labels = client.infer("model", [tensor], parameters={"top_k": 1}).as_numpy("labels")[:, 0]
            served += [label.decode() if isinstance(label, bytes) else str(label) for label in labels]
        differ = [i for i, (a, b) in enumerate(zip(served, expected)) if a != b]
        result[name] = {"images": len(expected), "identical_top1": len(expected) - len(differ), "differ": differ[:20]}
    return result


def load(server: ServerProcess, protocol: str, concurrency: int, make_input: Callable[[Any, int], Any],
         seconds: float) -> dict[str, float]:
    """``concurrency`` client threads, one image per request, for ``seconds`` (bounded)."""
    module = __import__(f"tritonclient.{protocol}", fromlist=["InferenceServerClient"])
    address = server.http if protocol == "http" else server.grpc
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    barrier = threading.Barrier(concurrency + 1)

    def client(k: int) -> None:
        connection = module.InferenceServerClient(address)
        connection.infer("model", [make_input(module, k)])  # warm-up, outside the clock
        barrier.wait()
        end, i = time.perf_counter() + seconds, k
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                connection.infer("model", [make_input(module, i)], parameters={"top_k": 1})
            except Exception as error:  # noqa: BLE001  (a failed request is counted, the run goes on)
                errors.append(str(error)[:200])
            latencies[k].append(time.perf_counter() - t0)
            i += concurrency

    workers = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)
    start = time.perf_counter()
    for worker in workers:
        worker.join(seconds + 60)
    wall = time.perf_counter() - start
    flat = [t for per_client in latencies for t in per_client]
    return {**stats(flat, len(flat) - len(errors), wall), "errors": len(errors)}


def input_maker(kind: str, frames: np.ndarray, encoded: list[bytes]) -> Callable[[Any, int], Any]:
    def make(module: Any, i: int) -> Any:
        if kind == "image":
            data = np.array([encoded[i % len(encoded)]], dtype=np.object_)
            tensor = module.InferInput("image", [1], "BYTES")
        else:
            data = frames[i % len(frames)][None]
            tensor = module.InferInput("pixels", list(data.shape), "UINT8")
        tensor.set_data_from_numpy(data)
        return tensor

    return make


def report_markdown(record: dict[str, Any]) -> str:
    setting = (f"bundle: `{record['bundle']}`; {record['images']} held-out images from `{record['data']}`; "
               f"input `{record['input']}`; threads {record['threads']}; max batch {record['max_batch']}")
    lines = [f"# Serving benchmark ({record['date']})", "", setting, "",
             "| path | concurrency | images/s | p50 ms | p99 ms |", "| --- | --- | --- | --- | --- |"]
    for phase in ("in_process_before", "in_process_after"):
        for name, row in record[phase]["figures"].items():
            lines.append(f"| in process ({phase[11:]}), {name} | 1 | {row['images_per_s']} | {row['p50_ms']} | {row['p99_ms']} |")
    for protocol, rows in record["served"].items():
        for concurrency, row in rows.items():
            lines.append(f"| served {protocol} | {concurrency} | {row['images_per_s']} | {row['p50_ms']} | {row['p99_ms']} |")
    lines += ["", f"served / in-process batched at concurrency {record['ratio_at']}: "
              + ", ".join(f"{p} {r:.2f}" for p, r in record["ratio"].items()) + " (target 0.8)", "",
              "agreement: " + ", ".join(f"{p} {a['identical_top1']}/{a['images']} identical top-1"
                                        for p, a in record["agreement"].items()),
              "", f"machine: {record['environment'].get('cpu')}", "",
              f"versions: {record['environment'].get('versions')}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--images", type=int, default=1000, help="held-out images (agreement and load)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="runtime threads, in process and served")
    parser.add_argument("--input", choices=("pixels", "image"), default="pixels")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/serving")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    frames, encoded = held_out(args.bundle, args.data, args.images)
    before = in_process(args.bundle, frames, batch=args.max_batch, seconds=args.seconds, threads=args.threads)
    server_args = [str(args.bundle), "--name", "model", "--max-batch", str(args.max_batch)]
    server = launch(server_args, threads=args.threads)
    try:
        agreed = agreement(server, encoded, before["labels"])
        make = input_maker(args.input, frames, encoded)
        served = {p: {c: load(server, p, c, make, args.seconds) for c in levels} for p in ("grpc", "http")}
    finally:
        exit_code = server.stop(30)
    after = in_process(args.bundle, frames, batch=args.max_batch, seconds=args.seconds, threads=args.threads)
    batched = statistics.mean(r["figures"][f"batch{args.max_batch}"]["images_per_s"] for r in (before, after))
    top = max(levels)
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "bundle": str(args.bundle), "data": args.data,
              "images": len(frames), "input": args.input, "threads": args.threads, "max_batch": args.max_batch,
              "seconds": args.seconds, "in_process_before": {"figures": before["figures"]},
              "in_process_after": {"figures": after["figures"]}, "served": served, "agreement": agreed,
              "ratio_at": top, "ratio": {p: served[p][top]["images_per_s"] / batched for p in served},
              "server_exit_code_on_sigterm": exit_code, "environment": environment()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.output.with_suffix(".json"), record)
    atomic_write_text(args.output.with_suffix(".md"), report_markdown(record))
    print(json.dumps({k: record[k] for k in ("served", "ratio", "agreement", "server_exit_code_on_sigterm")}, indent=1))


if __name__ == "__main__":
    main()
