"""MSG-Flow's semantic level as a conditioner (``conditioner=vq_tokens``): motion tokens that guide
any flow backbone that accepts a condition.

The (2, T, V) window is cut into ``S = ceil(T / sub_len)`` sub-windows of ``sub_len`` frames (the
last one padded by repeating the last frame; padded frames count as missing). An MLP encoder maps
each flattened sub-window to a ``code_dim`` vector (batch-standardised with ``vq_input_norm``, so
the codebook is not left behind by the encoder's drift early in training), the
:class:`~vadflow.nn.vq.VectorQuantizer` maps it to one of ``num_codes`` codes (a *motion
primitive*), and an MLP decoder reconstructs the sub-window. A causal Transformer reads
``[BOS, c_1 .. c_{S-1}]`` and predicts ``c_1 .. c_S``.

Loss terms it adds to the head's ``nll``: ``recon`` (squared error on *visible* joints only, per
coordinate), ``commit``, ``codebook`` (gradient codebook only; absent with EMA updates) and
``token_nll`` (next-token cross-entropy, nats per token). The condition handed to the coupling
networks is the quantised code embeddings, each repeated over its sub-window's frames,
``(B, code_dim, T, 1)``; ``detach_cond`` stops the flow's gradient there, so the flow cannot make
the codes carry details.

``training``: ``joint`` (every term every step) or ``staged`` (the first ``stage_steps`` steps
train the VQ auto-encoder alone; afterwards it is frozen and the Transformer and the flow train on
its tokens). The window score joins the token NLL and the flow NLL, each standardised by its
training statistics, with weights ``score_token_weight`` and ``score_flow_weight``.

Built by the head (``_partial_: true`` in the config): ``VQTokens(seg_len=, n_joints=,
in_channels=, **options)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from vadflow.nn.vq import VectorQuantizer

DEFAULT_WEIGHTS = {"token_nll": 1.0, "recon": 1.0, "commit": 0.25, "codebook": 1.0}


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"tf_dim ({dim}) must be divisible by tf_heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b s (qkv h e) -> qkv b h s e", qkv=3, h=self.heads)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(rearrange(y, "b h s e -> b s (h e)"))


class Block(nn.Module):
    """Pre-norm Transformer block with causal self-attention."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TokenTransformer(nn.Module):
    """Autoregressive model of a window's token sequence: ``logits[:, t]`` predicts ``codes[:, t]``
    from ``codes[:, :t]`` (a BOS token stands in front)."""

    def __init__(self, num_codes: int, n_tokens: int, dim: int = 32, heads: int = 2, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.bos = num_codes
        self.embed = nn.Embedding(num_codes + 1, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(1, n_tokens, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_codes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([torch.full_like(codes[:, :1], self.bos), codes[:, :-1]], 1)
        h = self.embed(inp) + self.pos[:, : codes.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    def nll(self, codes: torch.Tensor) -> torch.Tensor:
        """Per-window mean next-token cross-entropy (nats per token), in fp32."""
        logits = self.forward(codes).float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1), reduction="none")
        return ce.view(codes.shape).mean(1)


class LastDimBatchNorm(nn.BatchNorm1d):
    """BatchNorm (no affine) over the last dim of a (..., D) tensor; statistics in fp32."""

    def __init__(self, dim: int):
        super().__init__(dim, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(torch.promote_types(x.dtype, torch.float32))
            return super().forward(x.reshape(-1, x.shape[-1])).view(x.shape)


def mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VQTokens(nn.Module):
    name = "vq_tokens"
    default_weights = DEFAULT_WEIGHTS  # of its terms, before a loss config's weights

    def __init__(
        self,
        seg_len: int,
        n_joints: int,
        in_channels: int,
        sub_len: int = 4,
        num_codes: int = 32,
        code_dim: int = 16,
        vq_hidden: int = 64,
        vq_input_norm: bool = True,
        vq_ema: bool = True,
        vq_decay: float = 0.99,
        dead_threshold: float = 0.05,
        restart_dead: bool = True,
        usage_decay: float = 0.9,
        tf_dim: int = 32,
        tf_heads: int = 2,
        tf_layers: int = 2,
        tf_dropout: float = 0.0,
        detach_cond: bool = True,
        training: str = "joint",
        stage_steps: int = 500,
        score_token_weight: float = 1.0,
        score_flow_weight: float = 1.0,
    ):
        super().__init__()
        if training not in ("joint", "staged"):
            raise ValueError(f"training must be 'joint' or 'staged' (got {training!r})")
        if not 1 <= sub_len <= seg_len:
            raise ValueError(f"sub_len must be in 1..seg_len (got {sub_len}, seg_len {seg_len})")
        self.sub_len = sub_len
        self.n_tokens = math.ceil(seg_len / sub_len)
        self.cond_channels = code_dim
        self.detach_cond = bool(detach_cond)
        self.mode, self.stage_steps = training, int(stage_steps)
        self.score_token_weight, self.score_flow_weight = float(score_token_weight), float(score_flow_weight)
        sub_dim = in_channels * sub_len * n_joints
        self.encoder = mlp([sub_dim, vq_hidden, vq_hidden, code_dim])
        if vq_input_norm:  # standardise encoder outputs over the batch: codes cannot be left behind by drift
            self.encoder.append(LastDimBatchNorm(code_dim))
        self.quantizer = VectorQuantizer(num_codes, code_dim, ema=vq_ema, decay=vq_decay, dead_threshold=dead_threshold,
                                         restart=restart_dead, usage_decay=usage_decay)
        self.decoder = mlp([code_dim, vq_hidden, vq_hidden, sub_dim])
        self.transformer = TokenTransformer(num_codes, self.n_tokens, tf_dim, tf_heads, tf_layers, tf_dropout)
        self.register_buffer("step", torch.tensor(0, dtype=torch.long))  # training steps taken (staged mode)

    def loss_terms(self) -> set[str]:
        """The terms :meth:`train_terms` produces (the flow head adds ``nll``)."""
        return {"recon", "commit", "token_nll"} | (set() if self.quantizer.ema else {"codebook"})

    def subwindows(self, x: torch.Tensor, vis: torch.Tensor | None = None):
        """(B, C, T, V) -> (B, S, C * L * V) sub-windows, and their (B, S, C * L * V) visibility
        weights (padded frames and imputed joints 0)."""
        b, c, t, v = x.shape
        pad = self.n_tokens * self.sub_len - t
        vis = torch.ones(b, t, v, device=x.device) if vis is None else vis.to(device=x.device, dtype=torch.float32)
        if pad:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pad, -1)], 2)
            vis = torch.cat([vis, vis.new_zeros(b, pad, v)], 1)
        xs = rearrange(x, "b c (s l) v -> b s (c l v)", s=self.n_tokens)
        ws = repeat(vis, "b (s l) v -> b s (c l v)", s=self.n_tokens, c=c)
        return xs, ws

    def condition(self, q: torch.Tensor, t: int) -> torch.Tensor:
        """(B, S, D) code embeddings -> (B, D, T, 1), each repeated over its sub-window's frames."""
        cond = q.transpose(1, 2).repeat_interleave(self.sub_len, dim=2)[:, :, :t, None]
        return cond.detach() if self.detach_cond else cond

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices (B, S) of a batch of windows (no codebook update)."""
        xs, _ = self.subwindows(x)
        return self.quantizer(self.encoder(xs), update=False).codes

    def train_terms(self, x: torch.Tensor, vis: torch.Tensor | None):
        """(condition or None in stage 1 of ``staged``, per-sample terms, logged extras)."""
        stage1 = self.mode == "staged" and int(self.step) < self.stage_steps
        freeze_vq = self.mode == "staged" and not stage1
        xs, ws = self.subwindows(x, vis)
        terms: dict[str, torch.Tensor] = {}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_vq):
            if freeze_vq:  # stage 2: the encoder's BatchNorm uses (and keeps) its running statistics
                self.encoder.eval()
            vq = self.quantizer(self.encoder(xs), update=self.training and not freeze_vq)
            self.encoder.train(self.training)
            if not freeze_vq:
                recon = self.decoder(vq.q).float()
                err = ((recon - xs.float()) ** 2 * ws).sum((1, 2)) / ws.sum((1, 2)).clamp_min(1.0)
                terms.update(recon=err, commit=vq.commit.mean(1))
                if vq.codebook is not None:
                    terms["codebook"] = vq.codebook.mean(1)
        cond = None
        if not stage1:
            terms["token_nll"] = self.transformer.nll(vq.codes)
            cond = self.condition(vq.q, x.shape[2])
        if self.training and torch.is_grad_enabled():
            self.step += 1
        return cond, terms, {"perplexity": vq.perplexity.detach()}

    def score_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(condition, token NLL in nats/token (B,)) of a batch of windows, no codebook update."""
        xs, _ = self.subwindows(x)
        vq = self.quantizer(self.encoder(xs), update=False)
        return self.condition(vq.q, x.shape[2]), self.transformer.nll(vq.codes)
