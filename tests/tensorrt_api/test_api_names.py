"""Every TensorRT name the project uses exists in NVIDIA's own bindings, 10.x and 11.x.

The lists come from the ``tensorrt-cu12-bindings`` wheels (``make_name_lists.py``): 10.1.0 (the oldest
release the project supports), the newest 10.x and the newest 11.x. A name used unconditionally must be
in all of them; a name looked up with getattr/hasattr (feature detection) in at least one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.tensorrt_api.make_name_lists import VERSIONS, binary_names, python_names
from tests.tensorrt_api.names import StrictFake, defined, fake_module, used_names, versions_defining


def test_the_lists_hold_the_real_api() -> None:
    for version in VERSIONS:
        for name in ("Builder", "Runtime", "OnnxParser", "create_builder_config", "deserialize_cuda_engine",
                     "execute_async_v3", "set_tensor_address", "STRONGLY_TYPED", "TF32", "nptype"):
            assert defined(name, version), (name, version)
    assert not defined("set_timing_cach_", VERSIONS[0]) and not defined("execute_async_v4", VERSIONS[-1])
    # What changed between the majors, as NVIDIA's bindings say it.
    assert defined("FP16", "10.16.1.11") and not defined("FP16", "11.4.0.106")  # weak typing removed in 11


def test_every_tensorrt_name_the_project_uses_exists() -> None:
    uses = used_names()
    assert len({use.name for use in uses}) > 40  # the scan finds the code's TensorRT calls
    needed = {use: 1 if use.detected else len(VERSIONS) for use in uses}  # feature-detected: one version will do
    missing = [f"{use.where}: {use.name} (in {versions_defining(use.name) or 'none'})" for use in uses
               if len(versions_defining(use.name)) < needed[use]]
    assert missing == []


def test_feature_detected_names_exist_somewhere() -> None:
    from edgeresnet.backends.tensorrt.build import HARDWARE_COMPATIBILITY

    for name in HARDWARE_COMPATIBILITY.values():  # looked up with getattr on HardwareCompatibilityLevel
        assert versions_defining(name), name
    assert "STRONGLY_TYPED" in {use.name for use in used_names() if use.detected}


def test_the_scan_catches_a_misspelt_or_removed_api(tmp_path: Path) -> None:
    code = tmp_path / "code.py"
    code.write_text("def build(trt, builder, config):\n"
                    "    config.set_flag(trt.BuilderFlag.FP16)\n"  # removed in 11.x
                    "    config.clear_flag(trt.BuilderFlag.TF23)\n"  # misspelt
                    "    return builder.build_serialized_netwrk(None, config)\n")
    uses = {use.name: versions_defining(use.name) for use in used_names([code])}
    assert uses["FP16"] == ["10.1.0", "10.16.1.11"]
    assert uses["TF23"] == [] and uses["build_serialized_netwrk"] == []
    assert uses["set_flag"] == list(VERSIONS)


def test_strict_fakes_refuse_names_the_bindings_lack() -> None:
    with pytest.raises(TypeError, match="execute_async_v4"):
        class Context(StrictFake):
            def execute_async_v4(self, stream: int) -> bool:
                return True

    class Runtime(StrictFake):
        VERSION = "10.1.0"

    runtime = Runtime()
    runtime.engine_host_code_allowed = True
    with pytest.raises(AttributeError, match="engine_host_code_allowd"):
        runtime.engine_host_code_allowd = True  # a SimpleNamespace would have accepted it
    with pytest.raises(TypeError, match="FP16"):
        fake_module("11.4.0.106", BuilderFlag=None, FP16=1)


def test_the_extraction_reads_pybind_names_and_docstring_properties() -> None:
    binary = b"\0create_execution_context\0:ivar execution_context: the context\0x y\0_ZN8tensorrt3fooE\0"
    assert binary_names(binary) == {"create_execution_context", "execution_context"}
    assert python_names("__version__ = '1'\ndef nptype(t):\n    pass\nclass Logger:\n    pass\n") == {
        "__version__", "nptype", "Logger"}
    ast.parse((Path(__file__).parent / "make_name_lists.py").read_text())  # the script stays importable
