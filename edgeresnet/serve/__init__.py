"""Serving bundles at scale: a Triton model repository written from bundles, and `edgeresnet serve`.

- :mod:`~edgeresnet.serve.repository` — bundles → a model repository (Triton, OpenVINO Model Server, KServe);
- :mod:`~edgeresnet.serve.modelconfig` — Triton's ``config.pbtxt`` as a typed record;
- :mod:`~edgeresnet.serve.check` — verify a deployed repository against the bundles it came from;
- :mod:`~edgeresnet.serve.server` — the runtime ``Classifier`` behind KServe's ModelServer, speaking the
  Open Inference Protocol (KServe v2) over HTTP and gRPC, with dynamic batching
  (:mod:`~edgeresnet.serve.batching`).

Importing this package is cheap; the server's dependencies (the ``serve`` extra) load when it starts.
See docs/serving.md.
"""

from __future__ import annotations
