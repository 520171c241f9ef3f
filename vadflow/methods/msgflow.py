"""MSG-Flow (Liu et al., ICME 2026): motion-semantics tokens guiding a conditional normalizing flow.

**A reconstruction.** Only the abstract is known: a semantic level (a VQ auto-encoder turning motion
into discrete primitives, and an autoregressive Transformer over the token sequence) and a detail
level (a conditional normalizing flow conditioned on the semantic level). Everything below that is
not in that sentence is a guess, and every guess is an option of ``conf/method/msgflow.yaml``.

Semantic level
    The (2, T, V) window is cut into ``S = ceil(T / sub_len)`` sub-windows of ``sub_len`` frames
    (the last one padded by repeating the last frame; padded frames count as missing). An MLP
    encoder maps each flattened sub-window to a ``code_dim`` vector (batch-standardised with
    ``vq_input_norm``, so the codebook is not left behind by the encoder's drift early in
    training), :class:`VectorQuantizer` maps it
    to one of ``num_codes`` codes (a *motion primitive*), and an MLP decoder reconstructs the
    sub-window. Terms: ``recon`` (squared error on *visible* joints only, per coordinate),
    ``commit`` and ``codebook`` (the VQ-VAE terms; ``codebook`` is absent with EMA updates).
    A causal Transformer reads ``[BOS, c_1 .. c_{S-1}]`` and predicts ``c_1 .. c_S``: ``token_nll`` is
    the next-token cross-entropy in nats per token.

Detail level
    STG-NF's flow (K x ActNorm -> channel reversal -> affine coupling, prior N(R, I), NLL in bits
    per dim) whose coupling networks (:class:`CondSTGCNBlock`) add a 1x1 projection of the
    quantised code embeddings, each repeated over its sub-window's frames, ``(B, code_dim, T, 1)``.
    The condition is held fixed inside the flow, so the log-determinant is exact, but it is
    computed *from the window itself* (its tokens): the flow's ``nll`` is the conditional
    ``-log p(x | tokens(x))``, not a marginal likelihood of x. ``detach_cond`` (default true) stops
    the flow's gradient at the condition, so the flow cannot make the codes carry details.

Training (``training``)
    ``joint``: every term every step. ``staged``: the first ``stage_steps`` optimisation steps train
    the VQ auto-encoder alone (recon + commit + codebook); afterwards the VQ is frozen (no EMA
    updates, no restarts, no gradient) and the Transformer and the flow train on its tokens.
    The loss is ``objective(terms, defaults=term_weights)``: per-sample weighted sum, then the batch
    mean (``loss=nll``/``vq``) or AWAM's weighted mean (``loss=awam``).

Score
    ``score = w_tok * (token_nll - mu_tok) / sd_tok + w_flow * (nll - mu_flow) / sd_flow`` with
    ``w_tok = score_token_weight``, ``w_flow = score_flow_weight`` and the means and standard
    deviations of both NLLs over every training window (no flips), fitted after training by
    :meth:`fit_statistics` and kept in buffers (so in the checkpoint); 0 / 1 before fitting.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vadflow.losses import MeanNLL
from vadflow.nn.conditional import CondSTGCNBlock
from vadflow.nn.flow import Flow, FlowStep, nll_bits_per_dim, training_mean_std
from vadflow.nn.graph import uniform_adjacency
from vadflow.nn.vq import VectorQuantizer

DEFAULT_TERM_WEIGHTS = {"nll": 1.0, "token_nll": 1.0, "recon": 1.0, "commit": 0.25, "codebook": 1.0}


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"tf_dim ({dim}) must be divisible by tf_heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, s, d))


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


class MSGFlow(nn.Module):
    def __init__(
        self,
        seg_len: int = 24,
        n_joints: int = 18,
        in_channels: int = 2,
        # semantic level: VQ auto-encoder over sub-windows
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
        # semantic level: token Transformer
        tf_dim: int = 32,
        tf_heads: int = 2,
        tf_layers: int = 2,
        tf_dropout: float = 0.0,
        # detail level: conditional flow
        K: int = 8,
        R: float = 3.0,
        flow_hidden: int = 8,
        temporal_kernel: int | None = None,
        max_hop: int = 8,
        detach_cond: bool = True,
        # training and score
        training: str = "joint",
        stage_steps: int = 500,
        term_weights: dict | None = None,
        score_token_weight: float = 1.0,
        score_flow_weight: float = 1.0,
        objective: nn.Module | None = None,
    ):
        super().__init__()
        if training not in ("joint", "staged"):
            raise ValueError(f"training must be 'joint' or 'staged' (got {training!r})")
        if not 1 <= sub_len <= seg_len:
            raise ValueError(f"sub_len must be in 1..seg_len (got {sub_len}, seg_len {seg_len})")
        self.seg_len, self.n_joints, self.in_channels = seg_len, n_joints, in_channels
        self.sub_len = sub_len
        self.n_tokens = math.ceil(seg_len / sub_len)
        self.R = float(R)
        self.detach_cond = bool(detach_cond)
        self.mode, self.stage_steps = training, int(stage_steps)
        self.term_weights = {**DEFAULT_TERM_WEIGHTS, **{k: float(v) for k, v in (term_weights or {}).items()}}
        self.score_token_weight, self.score_flow_weight = float(score_token_weight), float(score_flow_weight)

        sub_dim = in_channels * sub_len * n_joints
        self.encoder = mlp([sub_dim, vq_hidden, vq_hidden, code_dim])
        if vq_input_norm:  # standardise encoder outputs over the batch: codes cannot be left behind by drift
            self.encoder.append(LastDimBatchNorm(code_dim))
        self.quantizer = VectorQuantizer(num_codes, code_dim, ema=vq_ema, decay=vq_decay, dead_threshold=dead_threshold,
                                         restart=restart_dead, usage_decay=usage_decay)
        self.decoder = mlp([code_dim, vq_hidden, vq_hidden, sub_dim])
        self.transformer = TokenTransformer(num_codes, self.n_tokens, tf_dim, tf_heads, tf_layers, tf_dropout)

        kernel = temporal_kernel or seg_len // 2 + 1
        A = torch.from_numpy(uniform_adjacency(n_joints, max_hop=max_hop))
        half = in_channels // 2
        self.flow = Flow([
            FlowStep(in_channels, CondSTGCNBlock(half, 2 * (in_channels - half), code_dim, flow_hidden, kernel, A, residual=k > 0))
            for k in range(K)
        ])
        self.objective = objective if objective is not None else MeanNLL()
        self.register_buffer("step", torch.tensor(0, dtype=torch.long))  # training steps taken (staged mode)
        # score standardisation: [token_nll, flow nll] statistics over the training windows
        self.register_buffer("stat_mean", torch.zeros(2))
        self.register_buffer("stat_std", torch.ones(2))
        self.register_buffer("stats_fitted", torch.tensor(0, dtype=torch.uint8))

    # -- pieces -------------------------------------------------------------------------
    def subwindows(self, x: torch.Tensor, vis: torch.Tensor | None = None):
        """(B, C, T, V) -> (B, S, C * L * V) sub-windows, and their (B, S, C * L * V) visibility
        weights (padded frames and imputed joints 0)."""
        b, c, t, v = x.shape
        pad = self.n_tokens * self.sub_len - t
        vis = torch.ones(b, t, v, device=x.device) if vis is None else vis.to(device=x.device, dtype=torch.float32)
        if pad:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pad, -1)], 2)
            vis = torch.cat([vis, vis.new_zeros(b, pad, v)], 1)
        xs = x.view(b, c, self.n_tokens, self.sub_len, v).permute(0, 2, 1, 3, 4).reshape(b, self.n_tokens, -1)
        ws = vis.view(b, 1, self.n_tokens, self.sub_len, v).expand(-1, c, -1, -1, -1)
        return xs, ws.permute(0, 2, 1, 3, 4).reshape(b, self.n_tokens, -1)

    def condition(self, q: torch.Tensor, t: int) -> torch.Tensor:
        """(B, S, D) code embeddings -> (B, D, T, 1), each repeated over its sub-window's frames."""
        cond = q.transpose(1, 2).repeat_interleave(self.sub_len, dim=2)[:, :, :t, None]
        return cond.detach() if self.detach_cond else cond

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices (B, S) of a batch of windows (no codebook update)."""
        xs, _ = self.subwindows(x)
        return self.quantizer(self.encoder(xs), update=False).codes

    def flow_nll(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        z, logdet = self.flow(x, cond)
        return nll_bits_per_dim(z, logdet, self.R)

    # -- the method's interface -----------------------------------------------------------
    def loss(self, batch: dict) -> dict:
        x = batch["x"]
        stage1 = self.mode == "staged" and int(self.step) < self.stage_steps
        freeze_vq = self.mode == "staged" and not stage1
        xs, ws = self.subwindows(x, batch.get("vis"))
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
        if not stage1:
            terms["token_nll"] = self.transformer.nll(vq.codes)
            terms["nll"] = self.flow_nll(x, self.condition(vq.q, x.shape[2]))
        out = {"loss": self.objective(terms, batch, defaults=self.term_weights)}
        out.update({k: v.detach().mean() for k, v in terms.items()})
        out["perplexity"] = vq.perplexity.detach()
        if self.training and torch.is_grad_enabled():
            self.step += 1
        return out

    def components(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-window (token NLL in nats/token, flow NLL in bits/dim), fp32."""
        x = batch["x"]
        xs, _ = self.subwindows(x)
        vq = self.quantizer(self.encoder(xs), update=False)
        return self.transformer.nll(vq.codes), self.flow_nll(x, self.condition(vq.q, x.shape[2]))

    def score(self, batch: dict) -> torch.Tensor:
        tok, flow = self.components(batch)
        u = (torch.stack([tok, flow], 1).float() - self.stat_mean) / self.stat_std
        return self.score_token_weight * u[:, 0] + self.score_flow_weight * u[:, 1]

    @torch.no_grad()
    def fit_statistics(self, loader) -> None:
        """Mean and std of token NLL and flow NLL over the training windows (fp32, eval mode)."""
        mean, std = training_mean_std(self, loader, lambda b: torch.stack(self.components(b), 1), self.stat_mean.device)
        self.stat_mean.copy_(mean)
        self.stat_std.copy_(std)
        self.stats_fitted.fill_(1)
