"""Periodic convolutions whose circular padding costs one autograd node and one folded gradient, beside torch's own.

torch's circular padding (``nn.Conv{1,2}d(padding_mode="circular")``, ``F.pad(mode="circular")``) is a composite of
slice copies, and autograd records every one of them (five in 2-D: the centre and four halos); its backward then
clones the whole gradient for each recorded copy and zero-fills the copied region: ~30% of a forward and backward
pass of the ``tiny-2d`` UNet. :func:`circular_pad` computes the same padded tensor (torch's own ``F.pad``, run
without autograd recording) and differentiates it by hand: the gradient of the padded tensor is *folded* back onto
the interior, each halo strip added onto the cells it copied, two small in-place additions per padded dimension
(onto one clone in :func:`circular_pad`; inside a convolution onto the convolution's own input gradient, which
nothing else reads). Outputs and gradients are the reference's up to the order of the additions in the fold (the
reference accumulates the same terms): equal to rounding.

:class:`PeriodicConv1d` / :class:`PeriodicConv2d` are ``nn.Conv1d`` / ``nn.Conv2d`` with ``padding_mode="circular"``
(the same parameters, state-dict keys and checkpoints) whose ``forward`` pads that way and runs the convolution
unpadded; ``forward(x, silu=True)`` convolves ``silu(x)``, the SiLU inside the same autograd node. ``fast=False``
runs torch's own circular path instead, the reference the tests compare with. Both are the same periodic function
of the input. The fast node has first and second derivatives under ``torch.autograd``, but no ``torch.func`` rule
(``torch.func.grad``, ``vmap``, ``jvp`` raise: a ``setup_context`` would cost every call): use ``fast=False`` there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PERIODIC_MODES", "PeriodicConv1d", "PeriodicConv2d", "check_periodic", "circular_pad", "fold_circular"]

#: How :class:`PeriodicConv1d` / :class:`PeriodicConv2d` pad: ``fast`` (:func:`circular_pad`) or ``reference``
#: (torch's ``padding_mode="circular"``).
PERIODIC_MODES = ("fast", "reference")


def check_periodic(mode: object) -> str:
    """``mode`` if it is one of :data:`PERIODIC_MODES`, else a ``ValueError`` naming both."""
    if not isinstance(mode, str) or mode not in PERIODIC_MODES:
        raise ValueError(f"periodic must be one of {', '.join(PERIODIC_MODES)}, got {mode!r}")
    return mode


def _torch_pads(pads: Sequence[int]) -> list[int]:
    """``F.pad``'s argument (last dimension first, each as ``(left, right)``) for symmetric ``pads`` per dimension."""
    out: list[int] = []
    for p in reversed(pads):
        out += [p, p]
    return out


def fold_circular(grad: Tensor, pads: Sequence[int]) -> Tensor:
    """The adjoint of circular padding: ``grad`` of the padded tensor folded back onto the interior.

    Args:
        grad: shaped ``(..., n_1 + 2 p_1, ..., n_d + 2 p_d)``.
        pads: ``(p_1, ..., p_d)``, the padding on each side of the last ``d`` dimensions (each ``p_k <= n_k``).

    Returns:
        ``(..., n_1, ..., n_d)``: every interior cell's gradient plus those of the halo cells that copy it. One clone
        (of the first padded dimension's interior slab), then per dimension two in-place additions of the halo
        strips; the result is a view of that clone (not contiguous in 2-D).
    """
    out: Tensor | None = None
    first = grad.ndim - len(pads)
    for k, p in enumerate(pads):
        if p == 0:
            continue
        dim, src = first + k, grad if out is None else out
        n = src.shape[dim] - 2 * p
        core = src.narrow(dim, p, n)
        if out is None:
            core = core.clone()
        core.narrow(dim, 0, p).add_(src.narrow(dim, p + n, p))  # the right halo copies the first p cells
        core.narrow(dim, n - p, p).add_(src.narrow(dim, 0, p))  # the left halo copies the last p cells
        out = core
    return grad.clone() if out is None else out


def _fold_in_place(grad: Tensor, pads: Sequence[int]) -> Tensor:
    """:func:`fold_circular` without its clone (1-D or 2-D padding): the halos are added onto ``grad``'s own border
    cells, rows first over every column (so the corners follow), and the interior view is returned. Only for a
    gradient nobody else reads (the padding inside a convolution)."""
    if len(pads) == 1:
        (p,) = pads
        n = grad.shape[-1] - 2 * p
        grad.narrow(-1, p, p).add_(grad.narrow(-1, p + n, p))
        grad.narrow(-1, n, p).add_(grad.narrow(-1, 0, p))
        return grad.narrow(-1, p, n)
    p, q = pads
    h, w = grad.shape[-2] - 2 * p, grad.shape[-1] - 2 * q
    grad.narrow(-2, p, p).add_(grad.narrow(-2, p + h, p))
    grad.narrow(-2, h, p).add_(grad.narrow(-2, 0, p))
    rows = grad.narrow(-2, p, h)
    rows.narrow(-1, q, q).add_(rows.narrow(-1, q + w, q))
    rows.narrow(-1, w, q).add_(rows.narrow(-1, 0, q))
    return rows.narrow(-1, q, w)


class _CircularPad(torch.autograd.Function):
    """``F.pad(silu(x) if silu else x, mode="circular")`` recorded as one autograd node; backward: the fold (and
    ``silu``'s derivative). Classic ``forward(ctx, ...)`` style: ``setup_context`` costs a signature binding per
    call, a visible share of a small layer's time on a CPU. ``inner=True`` (the padding inside
    :class:`PeriodicConv1d` / ``2d``, whose output only the convolution reads): the backward folds the incoming
    gradient in place, that gradient being the convolution's, read by no one else (:func:`_fold_in_place`).

    Measured and dropped: writing the SiLU straight into the padded tensor and copying the halos from Python
    (no faster: the strided halo copies cost what the saved pass does)."""

    @staticmethod
    def forward(ctx, x: Tensor, pads: tuple[int, ...], silu: bool, inner: bool) -> Tensor:
        ctx.pads, ctx.silu, ctx.inner = pads, silu, inner
        if silu:
            ctx.save_for_backward(x)
            x = F.silu(x)
        return F.pad(x, _torch_pads(pads), mode="circular")

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = _fold_in_place(grad, ctx.pads) if ctx.inner else fold_circular(grad, ctx.pads)
        if ctx.silu:
            (x,) = ctx.saved_tensors
            if torch.is_grad_enabled():  # create_graph: aten's silu_backward has no derivative of its own
                s = torch.sigmoid(x)
                grad = grad * (s * (1 + x * (1 - s)))
            else:
                grad = torch.ops.aten.silu_backward(grad, x)
        return grad, None, None, None


def circular_pad(x: Tensor, pads: Sequence[int]) -> Tensor:
    """Pad the last ``len(pads)`` dimensions of ``x`` periodically, ``pads[k]`` cells on each side of dimension ``k``.

    The values are those of ``F.pad(x, ..., mode="circular")``; the gradient is :func:`fold_circular` of the
    padded tensor's (one autograd node instead of torch's recorded slice copies). Each pad must be ``<=`` its
    dimension's size (the halo wraps once).
    """
    pads = tuple(int(p) for p in pads)
    if x.ndim < len(pads) or any(p < 0 for p in pads):
        raise ValueError(f"circular_pad: pads {pads} need >= 0 entries and x with >= {len(pads)} dims, got "
                         f"x shaped {tuple(x.shape)}")  # fmt: skip
    sizes = x.shape[x.ndim - len(pads) :]
    if any(p > n for p, n in zip(pads, sizes, strict=True)):
        raise ValueError(f"circular_pad: pads {pads} exceed the grid {tuple(sizes)} (a halo wraps at most once)")
    if not any(pads):
        return x
    return _CircularPad.apply(x, pads, False, False)


class _Periodic:
    """The shared constructor and ``forward`` of :class:`PeriodicConv1d` / :class:`PeriodicConv2d` (module
    docstring): ``nn.Conv{1,2}d``'s arguments but ``padding_mode`` (always ``"circular"``), and ``fast``."""

    padding: tuple[int, ...]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        fast: bool = True,
    ) -> None:
        super().__init__(  # type: ignore[call-arg]
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, "circular"
        )
        if not isinstance(self.padding, tuple):  # padding="same"/"valid" strings: not a periodic halo
            raise ValueError(f"{type(self).__name__} needs integer padding, got padding={self.padding!r}")
        self.fast = fast

    @property
    def fast(self) -> bool:
        """``True``: pad with :func:`circular_pad`; ``False``: torch's ``padding_mode="circular"`` (the reference)."""
        return self._fast

    @fast.setter
    def fast(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"{type(self).__name__}.fast must be a bool, got {type(value).__name__}")
        self._fast = value

    def forward(self, x: Tensor, *, silu: bool = False) -> Tensor:
        """The periodic convolution of ``x`` (of ``silu(x)`` with ``silu=True``: fused with the fast padding)."""
        if not self._fast:
            return super().forward(F.silu(x) if silu else x)  # type: ignore[misc]
        if any(self.padding):
            x = _CircularPad.apply(x, self.padding, silu, True)
        elif silu:
            x = F.silu(x)
        return self._unpadded(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self._fast else ", fast=False")  # type: ignore[misc]


class PeriodicConv1d(_Periodic, nn.Conv1d):
    """``nn.Conv1d(..., padding_mode="circular")`` with the fast periodic padding (module docstring).

    Takes ``nn.Conv1d``'s arguments but ``padding_mode`` (``padding``: the halo on each side) and ``fast``:
    ``False`` runs torch's own circular path.
    """

    _unpadded = staticmethod(F.conv1d)


class PeriodicConv2d(_Periodic, nn.Conv2d):
    """``nn.Conv2d(..., padding_mode="circular")`` with the fast periodic padding (module docstring).

    Takes ``nn.Conv2d``'s arguments but ``padding_mode`` (``padding``: the halo on each side, an int or a pair) and
    ``fast``: ``False`` runs torch's own circular path.
    """

    _unpadded = staticmethod(F.conv2d)
