"""The file layout of a bundle directory: every name a bundle may hold, defined once (no imports).

    bundle/
      manifest.json      what the bundle is (the schema: edgeresnet/bundle/schema.json)
      golden.npz         a few preprocessed inputs and the outputs the model must give for them
      model.onnx | model.xml + model.bin | model.engine      the model file named by ``model_file``
      model_fp32.onnx    the FP32 ONNX, beside every artifact that is not itself that ONNX
      calibration.json   the calibration table of an INT8 bundle (a device rebuilds INT8 from it)
      timing.cache       a TensorRT engine bundle's timing cache, for rebuilds
      model.pixels.onnx  an ONNX Runtime bundle's model taking uint8 N×H×W×C pixels (named by ``pixel_model``)
"""

from __future__ import annotations

BUNDLE_FORMAT = "edgeresnet-bundle"
FORMAT_VERSION = 2
MANIFEST_FILE = "manifest.json"
GOLDEN_FILE = "golden.npz"
FP32_ONNX = "model_fp32.onnx"
CALIBRATION_FILE = "calibration.json"
TIMING_CACHE_FILE = "timing.cache"
SCHEMA_RESOURCE = "schema.json"  # package data of edgeresnet.bundle
PIXEL_MODEL_FILE = "model.pixels.onnx"
# The model files a backend's bundle names in ``model_file`` (see each backend's record).
MODEL_ONNX = "model.onnx"
MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"  # the weights beside an OpenVINO IR's model.xml
MODEL_ENGINE = "model.engine"
