"""Limits on untrusted input: JSON read with a size and depth bound, memory asked for before it is taken,
thread counts bounded by the machine.

Everything a user or another machine hands the tool (a manifest, a model card, a calibration table, a
declared input shape, a ``--threads`` value) passes one of these checks before anything is parsed
deeply or allocated, and fails with the project's one-line error rather than a RecursionError, a
MemoryError or a crash inside a native library. See ``docs/security.md``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from edgeresnet.errors import EdgeResNetError

# A manifest, card or calibration table of a ResNet is a few hundred kilobytes at most.
MAX_JSON_BYTES = 16 << 20
# The deepest nesting any of our records uses is about 6; 64 leaves room for free-form notes.
MAX_JSON_DEPTH = 64
# Share of the memory available now that one request may take: the rest is the process's own working set.
MEMORY_SHARE = 0.5
# Threads per CPU the machine has: oversubscription beyond this only slows a run down, and runtimes
# allocate per-thread state (100,000 threads crash them).
MAX_THREADS_PER_CPU = 4


def read_json(path: str | Path, *, what: str, error: type[EdgeResNetError] = EdgeResNetError,
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in ``path``, read with the size and depth limits; ``error`` for anything else.

    Args:
        what: what the file is, for the message ("manifest", "model card", "calibration table").
        error: the project's error class the caller raises for its kind of file.
    """
    path = Path(path)
    try:
        handle, _ = open_regular(path)
        with handle:
            data = handle.read(max_bytes + 1)
    except OSError as failure:
        reason = failure.strerror or str(failure)
        raise error(f"cannot read {what} {path}: {reason.lower()}") from failure
    if len(data) > max_bytes:
        raise error(f"{path} is too large to be a {what} (over {max_bytes:,} bytes)")
    return parse_json(data, what=f"{what} {path}", error=error)


class NotRegularFileError(OSError):
    """A FIFO, device, socket or directory where a file was expected."""


def open_regular(path: str | Path, *, follow_links: bool = True) -> tuple[BinaryIO, int]:
    """Open a regular file for reading, with its size; anything else is refused without blocking on it.

    A FIFO under a name the tool reads (a ledger, a manifest) would otherwise hang the reader until
    something writes to it. Raises OSError: FileNotFoundError, NotRegularFileError, or the system's own.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    handle = os.fdopen(os.open(path, flags), "rb")
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        raise NotRegularFileError(errno.EINVAL, "not a regular file", str(path))
    return handle, info.st_size


def parse_json(data: bytes | str, *, what: str, error: type[EdgeResNetError] = EdgeResNetError,
               max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse untrusted JSON text: bounded in size and nesting, strict UTF-8, one-line errors."""
    if len(data) > max_bytes:
        raise error(f"{what} is too large to be read (over {max_bytes:,} bytes)")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as failure:
        raise error(f"cannot read {what}: it is not UTF-8 text, so not valid JSON") from failure
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as failure:
        # RecursionError: the C decoder refuses nesting deeper than the interpreter's recursion limit.
        raise error(f"cannot read {what}: it is not valid JSON") from failure
    depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise error(f"cannot read {what}: it nests {depth} levels deep (at most {MAX_JSON_DEPTH})")
    return value


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), found without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest  # deep enough to refuse; no need to walk the rest
        stack.extend((child, depth + 1) for child in children)
    return deepest


# --- text for a terminal ------------------------------------------------------------------------------

# Characters that move the cursor, retitle or clear a terminal, or reorder the text around them.
_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` safe to print on a terminal: control characters and escape sequences shown escaped.

    Labels, file names and messages come from files anyone can write (a model's metadata, a manifest);
    ``ESC ]0;...`` would retitle the terminal, ``ESC [2J`` clear it, a newline forge a row. Every printer
    of the CLI passes what it prints through here; ``keep_newlines`` keeps the line breaks of a table
    whose fields were escaped already.
    """
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif code < 32 or 0x7F <= code < 0xA0 or code in _BIDI_CONTROLS:
            out.append(repr(ch)[1:-1] if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


# --- memory ------------------------------------------------------------------------------------------


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(nbytes: float, *, what: str, error: type[EdgeResNetError] = EdgeResNetError) -> None:
    """Refuse, before allocating, a request for more than :data:`MEMORY_SHARE` of the available memory."""
    if not math.isfinite(nbytes):
        raise error(f"{what} needs an unbounded amount of memory")
    available = available_memory()
    if available is not None and nbytes > MEMORY_SHARE * available:
        raise error(f"{what} needs about {_gib(nbytes)} of memory; this machine has {_gib(available)} available")


def tensor_bytes(shape: tuple[int | None, ...] | list[int | None], itemsize: int = 4) -> float:
    """Bytes of a tensor of ``shape`` (unknown dimensions count as 1), as a float: it may be astronomic."""
    total = float(itemsize)
    for dim in shape:
        if isinstance(dim, int) and dim > 0:
            total *= dim
    return total


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes < 2**70 else "an astronomic amount"


# --- threads -----------------------------------------------------------------------------------------


def machine_cpus() -> int:
    """Logical CPUs of this machine (at least the ones this process may use)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        usable = 1
    return max(os.cpu_count() or 1, usable, 1)


def max_threads() -> int:
    return MAX_THREADS_PER_CPU * machine_cpus()


def check_threads(threads: int | None, *, error: type[EdgeResNetError] = EdgeResNetError) -> int | None:
    """``threads`` if it is None or a whole number from 1 to :func:`max_threads`; the one-line error otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= max_threads():
        raise error(f"threads must be a whole number from 1 to {max_threads()} "
                    f"({MAX_THREADS_PER_CPU} per CPU of this machine's {machine_cpus()}), got {threads!r}")
    return threads


__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "available_memory", "check_threads", "json_depth", "machine_cpus",
           "max_threads", "parse_json", "printable", "read_json", "require_memory", "tensor_bytes"]
