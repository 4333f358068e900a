"""The bundle's vocabulary: targets, precisions, calibration methods and gate verdicts, each defined once.

Pure Python with no imports beyond ``typing``, so the CLI can build its choices from it without
loading numpy, onnx or a runtime. Each name is a ``Literal`` for type checkers plus a tuple for code.
"""

from __future__ import annotations

from typing import Literal, get_args

Target = Literal["onnxruntime", "openvino", "tensorrt"]
TARGETS: tuple[Target, ...] = get_args(Target)

# What `compile` can build from a bundle.
CompileTarget = Literal["openvino", "tensorrt"]
COMPILE_TARGETS: tuple[CompileTarget, ...] = get_args(CompileTarget)

# The precision a bundle's model computes in (a manifest's ``precision``).
Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

# What a runner may be asked to run in: a bundle precision, or bf16 where the CPU has it.
RuntimePrecision = Literal["fp32", "fp16", "bf16", "int8"]
RUNTIME_PRECISIONS: tuple[RuntimePrecision, ...] = get_args(RuntimePrecision)

# How calibration ranges are computed; ``auto`` keeps the most accurate on held-out images.
CalibMethod = Literal["auto", "minmax", "entropy", "percentile"]
CALIB_METHODS: tuple[CalibMethod, ...] = get_args(CalibMethod)

# The accuracy gate's verdict on an INT8 artifact, from the 95% interval of its paired top-1 drop against
# FP32: ``within`` (upper end within the budget), ``over`` (lower end above it: the data show the budget is
# missed) or ``unresolved`` (the interval straddles the budget).
GateVerdict = Literal["within", "over", "unresolved"]
GATE_VERDICTS: tuple[GateVerdict, ...] = get_args(GateVerdict)

# The allowed top-1 drop of INT8 against FP32, in points, wherever a budget is not given.
DEFAULT_MAX_ACCURACY_DROP = 1.0
