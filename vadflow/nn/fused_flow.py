"""Inference fast path for STG-NF's flow: the same maths in far fewer memory passes.

Scoring is memory-bound: every step of the generic path runs ~30 elementwise passes over
(B, 2, T, V) tensors (ActNorm add and multiply, channel flip, ``cat``, BatchNorm, broadcast adds
of the per-frame branch, ReLU, sigmoid, log). With two channels and STG-NF's coupling network
(an ``STGCNBlock`` whose graph is a joint mean, eval-mode BatchNorm), a step reduces to a few
fused passes over (B, T, V) planes:

* the two channels are carried as two planes, so the flip and the ``cat`` disappear;
* ActNorm is one ``addcmul`` per plane;
* eval-mode BatchNorm is folded into the convolution before it (residual 1x1 conv, the graph
  conv on the joint mean, the temporal conv), so the coupling net becomes
  ``h_c = relu(t_c[b, t] + p_c * z1 + q_c)`` with ``t`` a per-frame (B, T) signal;
* the log-determinant of ActNorm is a constant per location, added once.

Used automatically by :class:`~vadflow.nn.flow.Flow` when gradients are off, the module is in
eval mode, no autocast is active and every step qualifies; the result equals the generic path to
float rounding (``tests/test_stgnf.py``).

Training (``plane_train_forward``) uses the same plane layout with autograd: BatchNorm takes batch
statistics, and the residual branch's BatchNorm of an affine map of one plane is computed from
that plane's mean and variance (no (B, 2, T, V) tensor is built); its running statistics are
updated exactly as ``nn.BatchNorm2d`` would. The per-frame branch (B, 2, T) runs the block's own
modules."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: torch.nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (O, ...) and bias (O,) of ``bn(conv(x))`` as one conv (eval-mode BatchNorm)."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * s.view(-1, *([1] * (weight.dim() - 1))), (b - bn.running_mean) * s + bn.bias


def step_qualifies(step) -> bool:
    from vadflow.nn.stgcn import STGCNBlock

    net = step.coupling.net
    return (type(net) is STGCNBlock and net.joint_mean and step.coupling.split == 1 and step.actnorm.bias.shape[1] == 2
            and net.gcn.conv.in_channels == 1 and net.gcn.conv.out_channels == 2)


def _coupling_terms(net, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(shift, raw) planes (B, T, V) of the coupling net on plane ``z1`` (B, T, V)."""
    bn1, _, conv, bn2 = net.tcn
    w_g, b_g = _fold_bn(net.gcn.conv.weight[:, 0, 0, 0], net.gcn.conv.bias, bn1)  # (2,), (2,)
    g = torch.relu(z1.mean(2)[:, None, :] * w_g.view(1, 2, 1) + b_g.view(1, 2, 1))  # (B, 2, T): per-frame branch
    w_t, b_t = _fold_bn(conv.weight[..., 0], conv.bias, bn2)  # (2, 2, k), (2,)
    t = F.conv1d(g, w_t, b_t, padding=conv.padding[0])  # (B, 2, T)
    out = []
    for c in range(2):
        base = t[:, c, :, None]
        if net.residual is not None:
            w_r, b_r = _fold_bn(net.residual[0].weight[:, 0, 0, 0], net.residual[0].bias, net.residual[1])
            h = torch.addcmul(base + b_r[c], z1, w_r[c])  # relu(t + p * z1 + q)
        else:
            h = base.expand_as(z1).clone()
        out.append(h.clamp_min_(0.0))
    return out[0], out[1]


def fused_forward(steps, x: torch.Tensor, per_location: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The flow of ``steps`` on ``x`` (B, 2, T, V) -> (z, logdet) as the generic path returns them."""
    a, b = x[:, 0], x[:, 1]  # (B, T, V) planes: channel 0, channel 1
    logdet = torch.zeros(x.shape[0], x.shape[2], x.shape[3], dtype=x.dtype, device=x.device)
    const = x.new_zeros(())
    for step in steps:
        s = torch.exp(step.actnorm.logs.view(2))
        bias = step.actnorm.bias.view(2)
        a, b = torch.addcmul(bias[0] * s[0], a, s[0]), torch.addcmul(bias[1] * s[1], b, s[1])  # (x + bias) * s
        const = const + step.actnorm.logs.sum()
        z1, z2 = b, a  # channel reversal
        shift, raw = _coupling_terms(step.coupling.net, z1)
        scale = raw.add_(2.0).sigmoid_().add_(1e-6)
        logdet.add_(torch.log(scale))
        z2 = (z2 + shift).mul_(scale)
        a, b = z1, z2
    z = torch.stack([a, b], 1)
    logdet.add_(const)
    return z, logdet if per_location else logdet.flatten(1).sum(1)


def _residual_train(net, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BN(conv1x1(z1)) per output channel in training mode, as (A_c, beta_c - A_c * mean):
    ``res_c = A_c * z1 + offset_c``; updates the BatchNorm's running statistics."""
    conv, bn = net.residual
    p, q = conv.weight[:, 0, 0, 0], conv.bias  # r_c = p_c * z1 + q_c
    mean = z1.mean()
    var = (z1 - mean).pow(2).mean()  # biased, as BatchNorm normalises with
    a = bn.weight * p / torch.sqrt(p * p * var + bn.eps)
    with torch.no_grad():  # what nn.BatchNorm2d records: momentum update, unbiased variance
        n = z1.numel()
        mom = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked + 1)
        bn.running_mean.mul_(1 - mom).add_(mom * (p * mean + q))
        bn.running_var.mul_(1 - mom).add_(mom * p * p * var * n / max(n - 1, 1))
        bn.num_batches_tracked.add_(1)
    return a, bn.bias - a * mean


def plane_train_forward(steps, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from vadflow.nn.stgcn import temporal_conv

    """Training-mode flow (autograd) in the plane layout -> (z, logdet (B,))."""
    a, b = x[:, 0], x[:, 1]
    logdet = x.new_zeros(x.shape[0])
    n_loc = x.shape[2] * x.shape[3]
    for step in steps:
        an = step.actnorm
        s = torch.exp(an.logs.view(2))
        a, b = (a + an.bias.view(2)[0]) * s[0], (b + an.bias.view(2)[1]) * s[1]
        logdet = logdet + an.logs.sum() * n_loc
        z1, z2 = b, a
        net = step.coupling.net
        bn1, relu, conv, bn2 = net.tcn
        m = z1.mean(2)[:, None, :, None]  # (B, 1, T, 1): the joint mean
        g = bn1(m * net.gcn.conv.weight.view(1, 2, 1, 1) + net.gcn.conv.bias.view(1, 2, 1, 1))
        t = bn2(temporal_conv(conv, relu(g)))[..., 0]  # (B, 2, T)
        if net.residual is not None:
            coef, offset = _residual_train(net, z1)
            shift = torch.relu(t[:, 0, :, None] + coef[0] * z1 + offset[0])
            raw = torch.relu(t[:, 1, :, None] + coef[1] * z1 + offset[1])
        else:
            shift = torch.relu(t[:, 0, :, None]).expand_as(z1)
            raw = torch.relu(t[:, 1, :, None]).expand_as(z1)
        scale = torch.sigmoid(raw + 2.0) + 1e-6
        logdet = logdet + torch.log(scale).flatten(1).sum(1)
        a, b = z1, (z2 + shift) * scale
    return torch.stack([a, b], 1), logdet
