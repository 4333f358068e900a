"""Parameter and multiply-accumulate counts, the numbers a checkpoint card and the model list quote."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from edgeresnet.errors import ModelConfigError


def count_params(model: nn.Module) -> int:
    """All parameters (trainable or not), excluding buffers such as BN running statistics."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_macs(model: nn.Module, input_size: int | tuple[int, int], in_chans: int = 3) -> int:
    """Multiply-accumulates of one image's forward pass through Conv2d and Linear layers.

    Conv: output elements × in_channels/groups × kh × kw; Linear: in × out features. BN, ReLU, pooling
    and the residual adds are left out, the usual convention (ResNet-50 at 224×224: 4.09 GMAC).
    Runs on the model's own device, so a model built on the ``meta`` device is counted without compute.
    """
    height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if height < 1 or width < 1 or in_chans < 1:
        raise ModelConfigError(f"cannot count MACs for input {in_chans}×{height}×{width}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += (output.numel() // output.shape[0]) * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += (output.numel() // output.shape[0]) * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()  # batch of one: BN must not try to compute batch statistics
        with torch.no_grad(), _MetaShapeOnly():
            model(torch.zeros(1, in_chans, height, width, device=device, dtype=dtype))
    except RuntimeError as error:
        raise ModelConfigError(
            f"input {in_chans}×{height}×{width} does not fit the model: {str(error).splitlines()[0]}"
        ) from error
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


class _MetaShapeOnly(TorchFunctionMode):
    """Compute only the output shape of the few ops whose meta kernels are slow Python decompositions.

    On the meta device batch norm, linear, adaptive pooling and broadcasting multiply run through
    torch._refs, whose first call imports torch._dynamo (~1.5 s) and each call costs ~1 ms (ResNet-1202
    has 1,200 BNs). Their output shapes are simple, and shapes are all a MAC count needs. Real tensors
    pass through untouched.
    """

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.is_meta:
            shape = _output_shape(func, args, kwargs)
            if shape is not None:
                return first.new_empty(shape)
        return func(*args, **kwargs)


_MULTIPLY = (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__)


def _output_shape(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...] | None:
    x: torch.Tensor = args[0]
    if func is F.batch_norm:
        return tuple(x.shape)
    if func is F.linear:
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        return (*x.shape[:-1], weight.shape[0])
    if func is F.adaptive_avg_pool2d:
        size = args[1] if len(args) > 1 else kwargs["output_size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        spatial = tuple(old if new is None else new for old, new in zip(x.shape[-2:], size, strict=True))
        return (*x.shape[:-2], *spatial)
    if func in _MULTIPLY and len(args) > 1 and isinstance(args[1], torch.Tensor):
        return tuple(torch.broadcast_shapes(x.shape, args[1].shape))
    return None
