"""What `export` starts from: a checkpoint directory, or an architecture name with a weights file.

Either way the result is a :class:`ModelSource` — the torch model plus the facts that must travel
with it (preprocessing, labels, input channels) — so the rest of the export never guesses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.bundle.records import Provenance
from edgeresnet.checkpoint import is_checkpoint_dir, load_checkpoint
from edgeresnet.data import open_source
from edgeresnet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from edgeresnet.digests import sha256_file
from edgeresnet.errors import CheckpointError, ExportError
from edgeresnet.version import __version__

if TYPE_CHECKING:
    import torch



@dataclass
class ModelSource:
    """A model ready to export, with the facts that travel with it."""

    model: torch.nn.Module
    architecture: str
    preprocessing: PreprocessSpec
    class_names: list[str]
    in_chans: int
    data_source: str | None = None
    checkpoint: Path | None = None
    weights: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    checkpoint_sha256: str | None = None  # of the checkpoint's weights file
    weights_sha256: str | None = None  # of ``weights``, hashed once when the model is loaded from it

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def metadata(self) -> dict[str, Any]:
        """What goes into the ONNX metadata_props, so a bare .onnx file still explains itself."""
        return {
            "architecture": self.architecture,
            "preprocessing": self.preprocessing.to_dict(),
            "labels": self.class_names,
            "edgeresnet_version": __version__,
        }


def source_provenance(source: ModelSource) -> Provenance:
    """Where a bundle comes from: the checkpoint and/or the weights file, each with its sha256."""
    return Provenance(
        checkpoint=str(Path(source.checkpoint).absolute()) if source.checkpoint else None,
        checkpoint_sha256=source.checkpoint_sha256 if source.checkpoint else None,
        weights=str(Path(source.weights).resolve()) if source.weights else None,
        weights_sha256=(source.weights_sha256 or sha256_file(source.weights)) if source.weights else None,
    )


def load_model_source(
    model: str,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_size: int | None = None,
    data: str | None = None,
) -> ModelSource:
    """Resolve MODEL: a checkpoint directory from `train`, or an architecture name plus ``weights``."""
    path = Path(model)
    if is_checkpoint_dir(path):
        given = {"--weights": weights, "--num-classes": num_classes, "--in-chans": in_chans,
                 "--input-size": input_size}
        ignored = [flag for flag, value in given.items() if value is not None]
        if ignored:
            raise ExportError(f"{', '.join(ignored)} are only for an architecture-name MODEL; "
                              f"the checkpoint {path} records its own")
        torch_model, card = load_checkpoint(path)
        return ModelSource(
            model=torch_model, architecture=card.architecture, preprocessing=card.preprocessing,
            class_names=list(card.class_names), in_chans=card.in_chans,
            data_source=card.data.get("source"), checkpoint=path, overrides=dict(card.overrides),
            checkpoint_sha256=card.weights_sha256 or None,
        )
    if path.exists():
        raise CheckpointError(f"{path} is not a checkpoint directory (no card.json); "
                              "pass a directory written by `edgeresnet train` or an architecture name")
    if _looks_like_a_path(model):
        raise CheckpointError(f"checkpoint directory not found: {path}")
    return _from_architecture(model, weights, num_classes, in_chans, input_size, data)


def _looks_like_a_path(model: str) -> bool:
    """Architecture names are bare words (``resnet50``); anything with a separator or dot-prefix is a path."""
    return "/" in model or "\\" in model or model.startswith((".", "~"))


def _from_architecture(
    name: str, weights: str | Path | None, num_classes: int | None, in_chans: int | None,
    input_size: int | None, data: str | None,
) -> ModelSource:
    from edgeresnet.models import create_model, get_model_info, weights_shape

    info = get_model_info(name)
    if weights is None:
        raise ExportError(f"exporting the architecture {name!r} needs --weights FILE (or pass a checkpoint directory)")
    source = open_source(data) if data else None
    file_classes, file_chans = weights_shape(weights)
    classes = num_classes or (source.num_classes if source else file_classes or 1000)
    channels = in_chans or file_chans or 3
    if file_classes is not None and file_classes != classes:
        # Exporting would ship a randomly initialised classifier head: fine-tuning is `train`'s job. The
        # hint names `train` only if it can use these weights: weights of another architecture fail there too.
        create_model(info.name, num_classes=file_classes, in_chans=channels, weights=str(weights))
        raise ExportError(
            f"{weights} has a {file_classes}-class head but the export needs {classes} classes; "
            f"fine-tune first (edgeresnet train --model {info.name} --weights {weights} --data ...)"
        )
    mode = "L" if channels == 1 else "RGB"
    if source is not None:
        if source.num_classes != classes:
            raise ExportError(f"--num-classes {classes} does not match {source.name}'s {source.num_classes} classes")
        native = source.native_size[0] if source.native_size else None
        spec = source.default_preprocess(input_size or native or info.input_size, channels=mode)
        class_names = list(source.class_names)
    else:
        size = input_size or info.input_size
        spec = PreprocessSpec(input_size=(size, size), resize_to=round(size / 0.875) if size >= 64 else None,
                              channels="RGB", mean=IMAGENET_MEAN, std=IMAGENET_STD).with_channels(mode)
        class_names = [f"class_{index}" for index in range(classes)]
    model = create_model(info.name, num_classes=classes, in_chans=channels, weights=str(weights))
    return ModelSource(
        model=model.eval(), architecture=info.name, preprocessing=spec, class_names=class_names,
        in_chans=channels, data_source=source.name if source else None, weights=Path(weights),
        weights_sha256=sha256_file(weights),  # once, not once per bundle and again for the report
    )
