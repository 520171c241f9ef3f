"""Hyperbolic graph convolution on the Poincare ball (DSNF's hyperbolic branch, reconstructed).

Per (frame, joint), a feature vector is a point on geoopt's Poincare ball (curvature c, fixed or
learnable). One layer:

1. a Mobius matrix-vector product and Mobius addition of a bias point (a gyro-translation, a
   non-linear map of the ball);
2. aggregation over skeleton neighbours by the weighted *gyromidpoint*
   ``m = 1/2 (x) (sum_j a_j lambda_j x_j / sum_j a_j (lambda_j - 1))``, conformal factor
   ``lambda_x = 2 / (1 - c |x|^2)``: points far from the origin (deep in the hierarchy) weigh
   more, which is what makes the aggregation hyperbolic rather than a Euclidean mean;
3. a temporal convolution in the tangent space at the origin (``logmap0``).

The output is a tangent vector field (B, O, T, V), ready to fuse with a Euclidean branch.

The ball operations are written out here in channel-first layout (B, C, T, V), with the norm as
``sqrt(sum(x^2, dim=1))``: geoopt's own functions reduce over the last dimension, and on these
tiny (C = 4) feature vectors that made DSNF ~30x slower than STG-NF. ``tests/test_daflow_dsnf.py`` checks
each function against geoopt's. One identity saves work: ``W (x) expmap0(u) = expmap0(W u)``.
The layer itself runs in scalar form (:func:`hyperbolic_layer_log0`: every point it visits lies in
the plane of ``W u`` and the bias point, so the ball maths becomes per-location scalars), through
``torch.compile`` where that works (:func:`compiled_layer_log0`); tests check both against the
ball functions composed.

Numerics: fp32 with autocast off (artanh/tanh near the boundary lose all precision in bf16);
tangent vectors are clipped to ``max_tangent_norm`` before ``expmap0`` and points are projected
to radius (1 - 1e-5)/sqrt(c), so logmap0 never sees the boundary.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from vadflow.nn.stgcn import temporal_conv

BALL_EPS = 1e-5
log = logging.getLogger(__name__)


def poincare_ball(curvature: float = 1.0, learnable: bool = False):
    import geoopt  # lazily: only DSNF needs it

    return geoopt.PoincareBall(c=float(curvature), learnable=learnable)


def _norm(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return (x * x).sum(dim, keepdim=True).clamp_min(1e-15).sqrt()


def _artanh(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(-1 + 1e-7, 1 - 1e-7)
    return 0.5 * (torch.log1p(x) - torch.log1p(-x))


def clip_norm(u: torch.Tensor, max_norm: float, dim: int = 1) -> torch.Tensor:
    return u * (max_norm / _norm(u, dim)).clamp(max=1.0)


def project(x: torch.Tensor, c: torch.Tensor, dim: int = 1) -> torch.Tensor:
    max_norm = (1 - BALL_EPS) / c.sqrt()
    return x * (max_norm / _norm(x, dim)).clamp(max=1.0)


def expmap0(u: torch.Tensor, c: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``tanh(sqrt(c) |u|) u / (sqrt(c) |u|)``, projected: the result's norm is
    ``tanh(sqrt(c) |u|) / sqrt(c)``, so clamping the tanh at 1 - BALL_EPS is the projection."""
    sc = c.sqrt()
    sn = sc * _norm(u, dim)
    return u * (torch.tanh(sn).clamp_max(1 - BALL_EPS) / sn)


def logmap0(y: torch.Tensor, c: torch.Tensor, dim: int = 1) -> torch.Tensor:
    sc = c.sqrt()
    n = _norm(y, dim)
    return _artanh(sc * n) * y / (sc * n)


def mobius_add(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, dim: int = 1) -> torch.Tensor:
    xy = (x * y).sum(dim, keepdim=True)
    x2 = (x * x).sum(dim, keepdim=True)
    y2 = (y * y).sum(dim, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return project(num / (1 + 2 * c * xy + c**2 * x2 * y2).clamp_min(1e-15), c, dim)


def lambda_x(x: torch.Tensor, c: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return 2 / (1 - c * (x * x).sum(dim, keepdim=True)).clamp_min(1e-15)


def mobius_scalar_mul(r: float, x: torch.Tensor, c: torch.Tensor, dim: int = 1) -> torch.Tensor:
    sc = c.sqrt()
    n = _norm(x, dim)
    return project(torch.tanh(r * _artanh(sc * n)) * x / (sc * n), c, dim)


def _midpoint_before_halving(x: torch.Tensor, A: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``sum_j a_j lambda_j x_j / sum_j a_j (lambda_j - 1)`` over the last axis, on the ball."""
    lam = lambda_x(x, c)
    num = torch.einsum("bctv,vw->bctw", lam * x, A)
    den = torch.einsum("bctv,vw->bctw", lam - 1.0, A).clamp_min(1e-6)  # lambda >= 2 > 1
    return project(num / den, c)


def gyromidpoint(x: torch.Tensor, A: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Weighted gyromidpoints over the last axis: x (B, C, T, V) on the ball, A (V, W) non-negative
    weights (column w = the neighbours of output node w). Returns (B, C, T, W) on the ball."""
    return mobius_scalar_mul(0.5, _midpoint_before_halving(x, A, c), c)


def gyromidpoint_log0(x: torch.Tensor, A: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``logmap0(gyromidpoint(x, A, c))`` in fewer operations: Mobius scalar multiplication is
    ``r (x) y = expmap0(r logmap0(y))``, so ``logmap0(1/2 (x) y) = 1/2 logmap0(y)``."""
    return 0.5 * logmap0(_midpoint_before_halving(x, A, c), c)


def hyperbolic_layer_log0(u: torch.Tensor, W: torch.Tensor, b: torch.Tensor, A: torch.Tensor, c: torch.Tensor,
                          max_tangent_norm: float) -> torch.Tensor:
    """The hyperbolic layer up to its temporal conv, in scalar form; equal (to rounding) to
    ``gyromidpoint_log0(mobius_add(expmap0(W clip_norm(u)), b), A)``.

    Every point of the layer lies in the plane spanned by ``Wu`` and the bias point ``b``:
    ``x = k Wu`` (clip and expmap0 are per-location scalings), ``x (+) b = a1 Wu + a2 b`` (Mobius
    addition is a combination of its two arguments), and the midpoint's numerator is ``(lam a1 Wu)
    @ A + ((lam a2) @ A) b``. So the vector work is a few passes over (B, C, T, V); everything else
    is arithmetic on per-location scalars (B, 1, T, V), C times fewer numbers than composing the
    ball functions (DSNF's training step ~1.15x faster eager, one thread; :func:`compiled_layer_log0`
    then fuses it).

    u (B, C, T, V) tangent vectors at 0; W (O, C); b (1, O, 1, 1) a point on the ball; A (V, W)."""
    sc = c.sqrt()
    R = (1 - BALL_EPS) / sc  # radius points are projected to
    Wu = torch.einsum("oc,bctv->botv", W, u)
    wu2 = (Wu * Wu).sum(1, keepdim=True)
    wub = (Wu * b).sum(1, keepdim=True)
    b2 = (b * b).sum()
    # clip_norm(u) then expmap0: x = k Wu
    s_u = (max_tangent_norm / _norm(u)).clamp(max=1.0)
    nv = s_u * wu2.clamp_min(1e-15).sqrt()
    k = s_u * torch.tanh(sc * nv).clamp_max(1 - BALL_EPS) / (sc * nv)
    # Mobius addition x (+) b = (alpha x + beta b) / D, then the projection (factor pr)
    xb, x2 = k * wub, k * k * wu2
    alpha, beta = 1 + 2 * c * xb + c * b2, 1 - c * x2
    inv_d = 1 / (1 + 2 * c * xb + c * c * x2 * b2).clamp_min(1e-15)
    a1, a2 = alpha * k * inv_d, beta * inv_d
    y2 = a1 * a1 * wu2 + 2 * a1 * a2 * wub + a2 * a2 * b2
    pr = (R / y2.clamp_min(1e-15).sqrt()).clamp(max=1.0)
    lam = 2 / (1 - c * y2 * pr * pr).clamp_min(1e-15)
    # weighted gyromidpoint before halving: num / den, projected
    den = ((lam - 1) @ A).clamp_min(1e-6)
    num = (lam * a1 * pr * Wu) @ A + ((lam * a2 * pr) @ A) * b
    n_p0 = ((num * num).sum(1, keepdim=True).clamp_min(1e-15).sqrt()) / den
    n_p = n_p0.clamp(max=R)
    # logmap0 of the half-way point = 1/2 logmap0(p), with p = num / den * (n_p / n_p0)
    return (0.5 * _artanh(sc * n_p) / (sc * n_p0 * den)) * num


_COMPILED: dict[str, object] = {}


def compiled_layer_log0():
    """``hyperbolic_layer_log0`` through ``torch.compile`` (one fused kernel each way instead of
    ~100 small element-wise ops: DSNF trains ~1.6x faster on CPU), or the plain function where
    compiling fails on this platform (no C++ compiler, say), with one warning. Kept at module
    level, not on the layer, so the model still pickles (``ddp_spawn``) and deep-copies."""
    if "fn" not in _COMPILED:
        compiled = torch.compile(hyperbolic_layer_log0)

        def layer(*args):
            try:
                return compiled(*args)
            except Exception as err:  # noqa: BLE001 - any compiler failure means: run eager from then on
                log.warning("DSNF: torch.compile of the hyperbolic layer failed (%s: %s); running it eagerly",
                            type(err).__name__, str(err).splitlines()[0] if str(err) else "")
                _COMPILED["fn"] = hyperbolic_layer_log0
                return hyperbolic_layer_log0(*args)

        _COMPILED["fn"] = layer
    return _COMPILED["fn"]


class HyperbolicGraphConv(nn.Module):
    """(B, C, T, V) tangent features -> (B, O, T, V) tangent features, computed on the ball.
    ``A`` (V, V): non-negative aggregation weights (column w = the neighbours of joint w)."""

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, ball, temporal_kernel: int = 3,
                 max_tangent_norm: float = 2.0, compile: bool = False):
        super().__init__()
        self.ball = ball
        self.compile = bool(compile)
        self.max_tangent_norm = float(max_tangent_norm)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels) / in_channels**0.5)
        self.bias = nn.Parameter(0.01 * torch.randn(1, out_channels, 1, 1))  # tangent vector of the bias point
        self.register_buffer("A", A.clone(), persistent=False)
        self.temporal = nn.Conv2d(out_channels, out_channels, (temporal_kernel, 1), padding=(temporal_kernel // 2, 0))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=u.device.type, enabled=False):
            if u.dtype in (torch.float16, torch.bfloat16):
                u = u.float()
            c = self.ball.c.to(u.dtype)
            b = expmap0(clip_norm(self.bias.to(u.dtype), self.max_tangent_norm), c)
            # Mobius matvec of expmap0(u), plus b, aggregated over skeleton neighbours on the
            # ball, back to the tangent space
            layer = compiled_layer_log0() if self.compile else hyperbolic_layer_log0
            t = layer(u, self.weight.to(u.dtype), b, self.A.to(u.dtype), c, self.max_tangent_norm)
            return temporal_conv(self.temporal, t)
