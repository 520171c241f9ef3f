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
    per dim) whose coupling networks (``STGCNBlock`` with ``cond_channels``) add a 1x1 projection of the
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

Composition
    MSG-Flow is the flow head (``vadflow.methods.flow_head.PoseFlow``) with ``backbone=stgcn``
    (``hidden: 8``) and ``conditioner=vq_tokens`` (``vadflow.nn.tokens.VQTokens``, the semantic
    level); any backbone that accepts a condition takes the same tokens
    (``method=dsnf conditioner=vq_tokens``).

Score
    ``score = w_tok * (token_nll - mu_tok) / sd_tok + w_flow * (nll - mu_flow) / sd_flow`` with
    ``w_tok = score_token_weight``, ``w_flow = score_flow_weight`` and the means and standard
    deviations of both NLLs over every training window (no flips), fitted after training by
    :meth:`fit_statistics` and kept in buffers (so in the checkpoint); 0 / 1 before fitting.
"""
from __future__ import annotations

import inspect
from functools import partial

from vadflow.methods.flow_head import PoseFlow
from vadflow.nn.backbones import STGCN
from vadflow.nn.tokens import DEFAULT_WEIGHTS, VQTokens

DEFAULT_TERM_WEIGHTS = {"nll": 1.0, **DEFAULT_WEIGHTS}
# the conditioner's own options (the head hands it seg_len, n_joints and in_channels)
TOKEN_OPTIONS = set(inspect.signature(VQTokens).parameters) - {"seg_len", "n_joints", "in_channels"}


class MSGFlow(PoseFlow):
    """MSG-Flow with every option in one flat signature (its checkpoints' configs): the token
    options (:class:`VQTokens`' own, same defaults) build the conditioner, ``flow_hidden`` /
    ``temporal_kernel`` / ``max_hop`` the ST-GCN backbone, the rest (``seg_len``, ``K``, ``R``,
    ``objective``...) go to the head."""

    def __init__(self, flow_hidden: int = 8, temporal_kernel: int | None = None, max_hop: int = 8,
                 term_weights: dict | None = None, **options):
        tokens = {k: options.pop(k) for k in list(options) if k in TOKEN_OPTIONS}
        super().__init__(backbone=STGCN(temporal_kernel=temporal_kernel, max_hop=max_hop, hidden=flow_hidden),
                         conditioner=partial(VQTokens, **tokens), term_weights={**DEFAULT_TERM_WEIGHTS, **dict(term_weights or {})},
                         **options)
