"""Fast paths for STG-NF's flow, scoring and training: the same maths in far fewer memory passes.

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

Training (``plane_train_forward``) uses planes too, joint-major (V, B, T), with autograd. The
per-frame branch (B, 2, T) runs the block's own modules (``STGCNBlock.temporal``); the residual
branch's BatchNorm of an affine map of one plane is computed from that plane's mean and variance
(no (B, 2, T, V) tensor is built), its running statistics updated exactly as ``nn.BatchNorm2d``
would. The work over the planes -- ActNorm and the coupling's relu/sigmoid/log -- runs in single
autograd nodes with hand-written backwards (:class:`PlaneActNorm`, :class:`PlaneCoupling`,
``stgcn.MeanVar``): training costs are per-op overhead, and autograd recorded ~15 nodes per
coupling."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vadflow.nn.stgcn import pointwise, residual_affine_train


def _fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: torch.nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (O, ...) and bias (O,) of ``bn(conv(x))`` as one conv (eval-mode BatchNorm)."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * s.view(-1, *([1] * (weight.dim() - 1))), (b - bn.running_mean) * s + bn.bias


def step_qualifies(step) -> bool:
    """A step the fused kernels compute exactly: two channels, and a coupling network that declares
    it has this path (``fused_path()``, e.g. ``STGCNBlock``); any other network runs eagerly."""
    declared = getattr(step.coupling.net, "fused_path", None)
    return callable(declared) and bool(declared()) and step.coupling.split == 1 and step.actnorm.bias.shape[1] == 2


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


def plane_train_forward(steps, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-mode flow (autograd) in the plane layout -> (z, logdet (B,)).

    Planes are held joint-major, (V, B, T): the per-frame branch (B, T) then broadcasts over the
    leading axis and the joint mean is a sum over it, both contiguous passes; with joints as the
    last axis those broadcasts ran ~3x slower than a plain elementwise op."""
    planes = x.permute(1, 3, 0, 2).contiguous()  # (2, V, B, T)
    a, b = planes[0], planes[1]
    logdet = x.new_zeros(x.shape[0])
    n_joints, n_loc = x.shape[3], x.shape[2] * x.shape[3]
    for step in steps:
        an = step.actnorm
        logs, bias = an.logs.view(2), an.bias.view(2)
        a, b = PlaneActNorm.apply(a, bias[0], logs[0]), PlaneActNorm.apply(b, bias[1], logs[1])
        z1, z2 = b, a
        net = step.coupling.net
        m = (z1.sum(0) * (1.0 / n_joints))[:, None, :, None]  # (B, 1, T, 1): the joint mean (graph conv over a uniform adjacency)
        t = net.temporal(pointwise(net.gcn.conv, m))[..., 0]  # (B, 2, T): the block's per-frame branch
        if net.residual is not None:
            coef, offset = residual_affine_train(net.residual, z1)
        else:
            coef = offset = z1.new_zeros(2)
        b_new, log_scale = PlaneCoupling.apply(z1, z2, t, coef, offset)
        logdet = logdet + log_scale
        a, b = z1, b_new
    actnorm_logdet = torch.cat([step.actnorm.logs.view(-1) for step in steps]).sum() * n_loc  # the same at every location
    return torch.stack([a, b], 0).permute(2, 0, 3, 1), logdet + actnorm_logdet  # (B, 2, T, V) view


class PlaneActNorm(torch.autograd.Function):
    """One plane's ActNorm, ``(x + bias) * exp(logs)``, as one pass forward and three back (the
    autograd version keeps ``x + bias`` and runs five)."""

    @staticmethod
    def forward(ctx, x, bias, logs):
        s = torch.exp(logs)
        out = torch.addcmul(bias * s, x, s)
        ctx.save_for_backward(out, s)
        return out

    @staticmethod
    def backward(ctx, g):
        out, s = ctx.saved_tensors
        flat = g.reshape(-1)
        return g * s, flat.sum() * s, torch.dot(flat, out.reshape(-1))  # d out/d logs = out


class PlaneCoupling(torch.autograd.Function):
    """The elementwise half of a training step as one autograd node with a hand-written backward
    (planes (V, B, T), per-frame branch t (B, 2, T)):

        shift = relu(t_0 + coef_0 * z1 + offset_0)
        raw   = relu(t_1 + coef_1 * z1 + offset_1)
        scale = sigmoid(raw + 2) + 1e-6
        out   = (z2 + shift) * scale,   log_scale = sum_{v,t} log(scale)

    Autograd would record ~15 nodes over the planes here, each with its own temporaries; this
    node saves five planes and its backward is ~12 passes. ``tests/test_stgnf.py`` checks it
    with gradcheck (float64)."""

    @staticmethod
    def forward(ctx, z1, z2, t, coef, offset):
        shift = (z1 * coef[0]).add_(t[:, 0] + offset[0]).clamp_min_(0.0)
        raw = (z1 * coef[1]).add_(t[:, 1] + offset[1]).clamp_min_(0.0)
        u = torch.sigmoid(raw + 2.0)
        scale = u + 1e-6
        moved = z2 + shift
        out = moved * scale
        log_scale = torch.log(scale).sum((0, 2))
        ctx.save_for_backward(z1, shift, raw, u, moved, coef)
        return out, log_scale

    @staticmethod
    def backward(ctx, g_out, g_log_scale):
        z1, shift, raw, u, moved, coef = ctx.saved_tensors
        scale = u + 1e-6
        g_z2 = g_out * scale
        g_shift = torch.ops.aten.threshold_backward(g_z2, shift, 0.0)  # relu's backward: g where shift > 0
        # d out/d scale = z2 + shift; d log_scale/d scale = 1 / scale; d scale/d raw = u (1 - u)
        g_scale = (g_out * moved).add_(g_log_scale[:, None] / scale)
        g_raw = torch.ops.aten.threshold_backward(g_scale.mul_(u).mul_(1.0 - u), raw, 0.0)
        g_t = torch.stack([g_shift.sum(0), g_raw.sum(0)], 1)
        flat_z1 = z1.reshape(-1)
        g_coef = torch.stack([torch.dot(g_shift.reshape(-1), flat_z1), torch.dot(g_raw.reshape(-1), flat_z1)])
        g_offset = torch.stack([g_shift.sum(), g_raw.sum()])
        g_z1 = (g_shift * coef[0]).add_(g_raw * coef[1])
        return g_z1, g_z2, g_t, g_coef, g_offset
