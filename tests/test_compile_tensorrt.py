"""compile --target tensorrt with a timing cache from an older bundle: read, never rewritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgeresnet.bundle import check_files, read_manifest
from edgeresnet.compile import compile_bundle
from tests.runtime.tiny_bundle import make_bundle, tiny_model


class _Built(Exception):
    pass


def test_an_older_bundles_timing_cache_is_only_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeresnet.backends.tensorrt import build as trt_export

    older = make_bundle(tmp_path / "older", tiny_model().onnx, extra_files={"timing.cache": _cache(tmp_path)})
    cache = older / "timing.cache"
    seen: dict[str, Any] = {}

    def build_engine(onnx_path: Path, engine_path: Path, *, options: Any, carry: str,
                     timing_cache_out: Path | None = None) -> None:
        seen.update(read=options.timing_cache, written=timing_cache_out)
        raise _Built

    monkeypatch.setattr(trt_export, "require_tensorrt_gpu", lambda carry: (None, None))
    monkeypatch.setattr(trt_export, "build_engine", build_engine)
    with pytest.raises(_Built):
        compile_bundle(older, target="tensorrt", precision="fp32", output=tmp_path / "new", timing_cache=cache)
    assert seen["read"] == cache and seen["written"] != cache
    # The updated cache is written into the new bundle's staging area, never into the older bundle.
    assert seen["written"].name == "timing.cache" and older not in seen["written"].parents
    assert (tmp_path / "new") != seen["written"].parent and tmp_path in seen["written"].parents
    assert check_files(older, read_manifest(older)) == []  # the older bundle still verifies


def _cache(tmp_path: Path) -> Path:
    path = tmp_path / "timing.cache"
    path.write_bytes(b"timings from an earlier build")
    return path
