"""The ST-GCN block STG-NF uses as its coupling network (parameter names match the official code).

Speed: with STG-NF's graph (uniform strategy, 8 hops) every entry of A is 1/V, so the graph
convolution is a mean over joints and everything after it (BN, ReLU, temporal conv, BN) is the
same for every joint. ``STGCNBlock`` detects such an A and runs that branch once per (window,
frame) instead of once per joint: identical maths, ~V times less work. (The only difference is in
BatchNorm's running-variance update, whose unbiased n/(n-1) factor then counts B*T rather than
B*T*V elements: a 1e-4 relative change.) Tiny 1x1 convolutions run as einsums, because oneDNN's
convolution is slow for 1-2 channels on CPU.
"""
from __future__ import annotations

import functools

import torch
from torch import nn


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution without oneDNN (same parameters, much faster for few channels)."""
    w = conv.weight[:, :, 0, 0]
    if w.shape[1] == 1:  # one input channel: a broadcast multiply
        y = x * w.view(1, -1, 1, 1)
    else:
        y = torch.einsum("bctv,oc->botv", x, w)
    return y + conv.bias.view(1, -1, 1, 1) if conv.bias is not None else y


def temporal_conv(conv: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """A (k, 1) convolution over time of h (B, C, T, V): every joint's series through
    :func:`conv_over_time` (one Toeplitz matmul). On these small inputs, forward and backward
    together, that is 2-8x faster than unfold + matmul and more than oneDNN's convolution."""
    b, c, t, v = h.shape
    y = conv_over_time(h.permute(0, 3, 1, 2).reshape(b * v, c, t), conv)  # (B * V, O, T)
    return y.view(b, v, -1, t).permute(0, 2, 3, 1)


class MeanVar(torch.autograd.Function):
    """Mean and biased variance of all of ``x`` in three passes forward and back
    (``torch.var_mean`` is ~30x slower on (B, T, V) planes; autograd's version ~2x)."""

    @staticmethod
    def forward(ctx, x):
        mean = x.sum() / x.numel()
        centred = (x - mean).reshape(-1)
        ctx.save_for_backward(x, mean)
        return mean, torch.dot(centred, centred) / x.numel()

    @staticmethod
    def backward(ctx, g_mean, g_var):
        x, mean = ctx.saved_tensors
        n = x.numel()
        # d mean/dx = 1/n; d var/dx = 2 (x - mean) / n (the mean's own term sums to zero)
        return (x - mean).mul_(2.0 * g_var / n).add_(g_mean / n)


def residual_affine_train(residual: nn.Sequential, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BN(conv1x1(z1)) of a one-channel input in training mode, per output channel c an affine map
    of z1: ``res_c = coef_c * z1 + offset_c``. Returns (coef, offset) and updates the BatchNorm's
    running statistics as ``nn.BatchNorm2d`` would; no (B, C, T, V) tensor is built."""
    conv, bn = residual
    p, q = conv.weight[:, 0, 0, 0], conv.bias  # r_c = p_c * z1 + q_c
    mean, var = MeanVar.apply(z1)  # biased variance, as BatchNorm normalises with
    a = bn.weight * p / torch.sqrt(p * p * var + bn.eps)
    with torch.no_grad():  # what nn.BatchNorm2d records: momentum update, unbiased variance
        n = z1.numel()
        mom = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked + 1)
        bn.running_mean.lerp_(p * mean + q, mom)
        bn.running_var.lerp_(p * p * var * (n / max(n - 1, 1)), mom)
        bn.num_batches_tracked.add_(1)
    # q cancels in BatchNorm (true gradient 0); "+ 0 * q" keeps it in the graph, so DDP (which
    # expects a gradient for every parameter) and optimisers see it as used
    return a, bn.bias - a * mean + 0.0 * q


@functools.lru_cache(maxsize=32)
def _toeplitz_index(c: int, o: int, t: int, k: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each entry of the (C*T, O*T) Toeplitz matrix of a 'same' (k,) conv reads its weight
    from ``weight.reshape(-1)``, and which entries are inside the kernel (the rest are zero).
    Built outside inference mode: a cached inference tensor could not be saved for a later backward."""
    with torch.inference_mode(False):
        s_idx, t_idx = torch.arange(t)[:, None], torch.arange(t)[None, :]
        lag = s_idx - t_idx + pad  # input frame s feeds output frame t through tap s - t + pad
        valid = (lag >= 0) & (lag < k)
        ci, oi = torch.arange(c)[:, None, None, None], torch.arange(o)[None, None, :, None]
        index = (oi * c + ci) * k + lag.clamp(0, k - 1)[None, :, None, :]  # (C, S, O, T)
        return index.reshape(c * t, o * t), valid[None, :, None, :].expand(c, t, o, t).reshape(c * t, o * t)


def conv_over_time(g: torch.Tensor, conv: nn.Conv1d | nn.Conv2d) -> torch.Tensor:
    """``conv`` (a Conv1d, or a Conv2d with a (k, 1) kernel; 'same' padding) on g (B, C, T) as one
    matmul with its (C*T, O*T) Toeplitz matrix: forward and backward together 2-3x faster than
    ``F.conv1d`` on these small inputs."""
    b, c, t = g.shape
    o, k, pad = conv.out_channels, conv.kernel_size[0], conv.padding[0]
    index, valid = _toeplitz_index(c, o, t, k, pad)
    if index.device != g.device:
        index, valid = index.to(g.device), valid.to(g.device)
    toeplitz = conv.weight.reshape(-1)[index] * valid
    return torch.addmm(conv.bias.repeat_interleave(t), g.reshape(b, c * t), toeplitz).view(b, o, t)


def is_joint_mean(A: torch.Tensor) -> bool:
    """One adjacency slice whose entries are all 1/V (up to float noise): aggregation = mean over joints."""
    return A.shape[0] == 1 and bool(torch.allclose(A, torch.full_like(A, 1.0 / A.shape[-1]), atol=1e-7))


def graph_features(gcn: "GraphConv", x: torch.Tensor, A: torch.Tensor, joint_mean: bool) -> torch.Tensor:
    """The graph convolution, once per frame (B, C, T, 1) when A is a joint mean, else per joint."""
    return pointwise(gcn.conv, x.mean(dim=3, keepdim=True)) if joint_mean else gcn(x, A)


class GraphConv(nn.Module):
    """1x1 conv to ``out * K`` channels, then aggregation over joints with the K adjacency slices."""

    def __init__(self, in_channels: int, out_channels: int, n_slices: int = 1):
        super().__init__()
        self.n_slices = n_slices
        self.conv = nn.Conv2d(in_channels, out_channels * n_slices, kernel_size=1)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        x = pointwise(self.conv, x)
        n, kc, t, v = x.shape
        x = x.view(n, self.n_slices, kc // self.n_slices, t, v)
        return torch.einsum("nkctv,kvw->nctw", x, A)


class STGCNBlock(nn.Module):
    """gcn -> BN -> ReLU -> temporal conv -> BN (+ residual) -> ReLU.

    ``hidden`` channels between the graph and the temporal conv (default: ``out_channels``, STG-NF's
    block). ``cond_channels > 0`` adds a 1x1 projection of a condition ``cond`` (B, D, T, 1 or V) to
    the graph features (MSG-Flow's tokens); a block built without one refuses a condition rather
    than dropping it."""

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int, A: torch.Tensor, residual: bool = True,
                 hidden: int | None = None, cond_channels: int = 0):
        super().__init__()
        hidden = int(hidden or out_channels)
        self.register_buffer("A", A.clone(), persistent=False)
        self.joint_mean = is_joint_mean(A)
        self.gcn = GraphConv(in_channels, hidden, A.shape[0])
        self.cond = nn.Conv2d(cond_channels, hidden, kernel_size=1) if cond_channels else None
        pad = (temporal_kernel - 1) // 2
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, (temporal_kernel, 1), padding=(pad, 0)),
            nn.BatchNorm2d(out_channels),
        )
        if residual:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        else:
            self.residual = None

    def __init_subclass__(cls, **kwargs):
        # The fused kernels (vadflow.nn.fused_flow) re-implement *this* forward. A subclass that
        # changes the computation must say again whether they still apply: until it overrides
        # ``fused_path`` too, its flows run the eager path (correct, and reported by Flow.fused).
        super().__init_subclass__(**kwargs)
        changed = {"forward", "temporal", "residual_branch"} & set(cls.__dict__)
        if changed and "fused_path" not in cls.__dict__:
            cls.fused_path = lambda self: False

    def fused_path(self) -> bool:
        """Whether ``vadflow.nn.fused_flow`` computes this block exactly: STG-NF's shape (one input
        plane, two outputs, a joint-mean graph, no condition)."""
        return (self.joint_mean and self.cond is None and self.gcn.conv.in_channels == 1
                and self.gcn.conv.out_channels == 2 and self.tcn[2].out_channels == 2)

    def _fast_training(self, x: torch.Tensor) -> bool:
        """Training in fp32/fp64 without autocast: a one-channel input's residual branch (1x1
        conv + BatchNorm) runs as an affine map of the input (``residual_affine_train``)."""
        return (self.training and x.shape[1] == 1 and x.dtype in (torch.float32, torch.float64)
                and not torch.is_autocast_enabled(x.device.type))

    def temporal(self, h: torch.Tensor) -> torch.Tensor:
        bn1, relu, conv, bn2 = self.tcn
        return bn2(temporal_conv(conv, relu(bn1(h))))

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor | float:
        if self.residual is None:
            return 0.0
        if self._fast_training(x):
            coef, offset = residual_affine_train(self.residual, x[:, 0])
            return torch.addcmul(offset.view(1, -1, 1, 1), x, coef.view(1, -1, 1, 1))
        return self.residual[1](pointwise(self.residual[0], x))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        res = self.residual_branch(x)
        h = graph_features(self.gcn, x, self.A, self.joint_mean)
        if cond is not None:
            if self.cond is None:
                raise ValueError("this coupling network was built without a condition (cond_channels=0) and cannot use one")
            h = h + pointwise(self.cond, cond.to(h.dtype))  # (B, H, T, 1 or V): broadcasts over joints
        out = self.temporal(h) + res
        return torch.relu(out.expand(-1, -1, -1, x.shape[3]))  # mean path without residual: (B, C, T, 1)
