"""The name of a bundle inside an export or pipeline output: ``<backend>-<precision>[-<variant>]``.

``onnxruntime-int8`` is what ``export`` writes; ``tensorrt-fp16-engine`` what the pipeline compiles from
it. Backend names hold no ``-`` (see :class:`edgeresnet.backends.Backend`), so the name parses back.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeresnet.errors import EdgeResNetError


@dataclass(frozen=True)
class ArtifactName:
    target: str
    precision: str
    variant: str = ""

    def __str__(self) -> str:
        return "-".join(part for part in (self.target, self.precision, self.variant) if part)

    @classmethod
    def parse(cls, text: str) -> ArtifactName:
        target, _, rest = text.partition("-")
        precision, _, variant = rest.partition("-")
        if not target or not precision:
            raise EdgeResNetError(f"{text!r} is not a bundle name (<backend>-<precision>[-<variant>])")
        return cls(target, precision, variant)
