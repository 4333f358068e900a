"""Start `edgeresnet serve` in a child process on the loopback, on ports the OS picks, time-bounded."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"serving .*: http://(?P<host>[\d.]+):(?P<http>\d+) grpc [\d.]+:(?P<grpc>\d+)")


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    http: str = ""
    grpc: str = ""
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; a server that does not stop in time is killed and the test sees -9."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


def _pump(stream: object, lines: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line.rstrip("\n"))


class ServerDidNotStart(RuntimeError):
    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def launch(args: list[str], *, threads: int | None = 1, timeout: float = 90.0) -> ServerProcess:
    """Run ``edgeresnet serve ARGS`` on 127.0.0.1 with OS-chosen ports; ready, or ServerDidNotStart."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "edgeresnet", "serve", *args, "--host", "127.0.0.1", "--http-port", "0",
               "--grpc-port", "0", *(["--threads", str(threads)] if threads else [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=REPO_ROOT)
    server = ServerProcess(process)
    for stream, lines in ((process.stdout, server.stdout), (process.stderr, server.stderr)):
        threading.Thread(target=_pump, args=(stream, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = next((m for m in map(READY.search, server.stdout) if m), None)
        if match:
            server.http = f"{match['host']}:{match['http']}"
            server.grpc = f"{match['host']}:{match['grpc']}"
            return server
        if process.poll() is not None:
            time.sleep(0.2)  # let the pumps drain
            raise ServerDidNotStart(f"edgeresnet serve exited with {process.returncode}: "
                                    f"{' | '.join(server.stderr[-5:])}", timed_out=False)
        time.sleep(0.1)
    server.stop(5)
    raise ServerDidNotStart(f"edgeresnet serve did not become ready within {timeout:.0f} s", timed_out=True)


def start_server(args: list[str], *, timeout: float = 90.0) -> ServerProcess:
    """:func:`launch` for a test: a server that exits fails the test, one too slow to start skips it."""
    try:
        return launch(args, timeout=timeout)
    except ServerDidNotStart as error:
        if error.timed_out:
            pytest.skip(f"{error} on this machine")
        pytest.fail(str(error))
