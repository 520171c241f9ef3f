"""Normalizing-flow pieces shared by every flow method (STG-NF, DA-Flow, DSNF, MSG-Flow).

A step is ActNorm -> channel reversal -> affine coupling, as in STG-NF (Glow without the 1x1
invertible conv). The coupling network is any module ``net(z1, cond) -> (B, 2 * C2, T, V)``, so
richer methods only swap the network and the log-determinant stays exact.
"""
from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import nn


class ActNorm(nn.Module):
    """Per-channel affine ``z = (x + bias) * exp(logs)`` with data-dependent init.

    The first training batch sets bias and scale so the output has zero mean and unit variance per
    channel. Under DDP the statistics are averaged over all ranks. The "initialised" flag is a
    buffer, so it survives ``state_dict`` round-trips (the official code keeps it as a Python
    attribute, and a reloaded model would re-initialise on the next training batch)."""

    def __init__(self, channels: int, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        x = x.float()
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        sq = (x**2).mean(dim=(0, 2, 3), keepdim=True)
        if dist.is_available() and dist.is_initialized():
            stats = torch.cat([mean, sq])
            dist.all_reduce(stats)
            stats /= dist.get_world_size()
            mean, sq = stats[:1], stats[1:]
        std = (sq - mean**2).clamp_min(0).sqrt()
        self.bias.data.copy_(-mean)
        self.logs.data.copy_(torch.log(self.scale / (std + 1e-6)))
        self.initialized.fill_(1)

    def forward(self, x: torch.Tensor, logdet: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        z = (x + self.bias) * torch.exp(self.logs)
        per_location = self.logs.sum()  # every (t, v) location gets sum_c logs_c
        return z, logdet + (per_location if logdet.ndim == 3 else per_location * x.shape[2] * x.shape[3])


class CouplingTransform(torch.autograd.Function):
    """``out = (z2 + shift) * scale``, ``scale = sigmoid(raw + 2) + 1e-6``, and ``log(scale)``
    summed over channels (``per_location``: a (B, T, V) map) or over all but the batch, as one
    autograd node: autograd records ~8 nodes here, each keeping its own temporaries."""

    @staticmethod
    def forward(ctx, z2, shift, raw, per_location: bool):
        u = torch.sigmoid(raw + 2.0)
        scale = u + 1e-6
        moved = z2 + shift
        log_scale = torch.log(scale)
        log_scale = log_scale.sum(1) if per_location else log_scale.flatten(1).sum(1)
        ctx.save_for_backward(u, moved)
        ctx.per_location = per_location
        return moved * scale, log_scale

    @staticmethod
    def backward(ctx, g_out, g_log_scale):
        u, moved = ctx.saved_tensors
        scale = u + 1e-6
        g_z2 = g_out * scale  # = the gradient of shift
        g_ls = g_log_scale[:, None] if ctx.per_location else g_log_scale.view(-1, *([1] * (u.dim() - 1)))
        g_raw = (g_out * moved).add_(g_ls / scale).mul_(u).mul_(1.0 - u)  # d scale/d raw = u (1 - u)
        return g_z2, g_z2, g_raw, None


class AffineCoupling(nn.Module):
    """STG-NF coupling: ``h = net(z1)``, shift = h[:, 0::2], scale = sigmoid(h[:, 1::2] + 2) + 1e-6,
    ``z2 = (z2 + shift) * scale``. The +2 starts the scale near 1; the 1e-6 keeps log finite."""

    def __init__(self, net: nn.Module, channels: int):
        super().__init__()
        self.net = net
        self.split = channels // 2

    def forward(self, z: torch.Tensor, logdet: torch.Tensor, cond: torch.Tensor | None = None):
        return self.couple(z[:, : self.split], z[:, self.split :], logdet, cond)

    def couple(self, z1: torch.Tensor, z2: torch.Tensor, logdet: torch.Tensor, cond: torch.Tensor | None = None):
        h = self.net(z1, cond)
        z2, log_scale = CouplingTransform.apply(z2, h[:, 0::2], h[:, 1::2], logdet.ndim == 3)
        return torch.cat([z1, z2], 1), logdet + log_scale


class FlowStep(nn.Module):
    def __init__(self, channels: int, coupling_net: nn.Module):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.coupling = AffineCoupling(coupling_net, channels)

    def forward(self, z, logdet, cond=None):
        z, logdet = self.actnorm(z, logdet)
        if z.shape[1] == 2:  # channel reversal as two views instead of a flipped copy
            return self.coupling.couple(z[:, 1:], z[:, :1], logdet, cond)
        return self.coupling(z.flip(1), logdet, cond)  # channel reversal: the permutation STG-NF uses


class PackedSlot(NamedTuple):
    """One layer tensor of a packed flow: its name under the flow, the module and attribute that read
    it, and its shape (its place in ``packed`` follows from the shapes before it)."""
    name: str
    module: nn.Module
    attr: str
    shape: torch.Size


class Flow(nn.Module):
    """A stack of flow steps mapping x -> z with the exact log-determinant.

    ``per_location=True`` returns the log-determinant as a (B, T, V) map instead of (B,): every
    step's terms are elementwise over (t, v) (ActNorm: sum_c logs_c at each location; coupling:
    log scale of z2 there), and no step moves a location (the permutation reverses channels
    only), so the map sums exactly to the total. With the prior's per-location log-density it
    gives each frame and joint its share of the NLL: localisation, and scores that skip imputed
    joints."""

    def __init__(self, steps: list[FlowStep], packed: bool = False):
        super().__init__()
        self.steps = nn.ModuleList(steps)
        from vadflow.nn import fused_flow, fused_mlp_flow

        # the fused kernels run only where every coupling network declares them (fused_path());
        # they need fp32 without autocast, so bf16 autocast always takes the eager loop below
        self.fusable = all(fused_flow.step_qualifies(s) for s in self.steps)
        # MLP couplings on a vector (the trajectory flow), packed: training as one autograd node, the same values
        self.mlp_fusable = packed and all(fused_mlp_flow.step_qualifies(s) for s in self.steps)
        node_order = [id(p) for s in self.steps for p in fused_mlp_flow.step_parameters(s)] if self.mlp_fusable else []
        self.slots: list[PackedSlot] = []
        if packed:
            packed_order = self._pack()
            if self.mlp_fusable and packed_order != node_order:
                raise ValueError("the packed parameters are not in the order the one-node training path reads them")

    def _pack(self) -> list[int]:
        """Moves every parameter of the steps into one flat parameter, ``packed``, in the order
        ``named_parameters`` listed them; each layer reads its weights as views of it
        (``layers_bound``). Why: a small flow has dozens of tiny tensors, and the optimiser and
        gradient clipping pay a fixed cost per tensor. On one tensor they compute the same values
        element for element."""
        chunks, order = [], []
        for module_name, module in self.named_modules():
            for name, p in list(module._parameters.items()):
                if p is None:
                    continue
                self.slots.append(PackedSlot(f"{module_name}.{name}", module, name, p.shape))
                chunks.append(p.detach().reshape(-1))
                order.append(id(p))
                del module._parameters[name]
        self.packed = nn.Parameter(torch.cat(chunks))
        self._register_load_state_dict_pre_hook(self._pack_layer_keys)
        return order

    def layer_tensors(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``flat`` (``packed`` by default, or anything laid out as it is: a saved copy, an
        optimiser's per-element state) cut into each layer's tensor, as views, by the layer's name."""
        from vadflow.nn.fused_mlp_flow import unpacked

        views = unpacked(self.packed if flat is None else flat, [slot.shape for slot in self.slots])
        return {slot.name: view for slot, view in zip(self.slots, views)}

    @contextlib.contextmanager
    def layers_bound(self):
        """Each layer reads its weights as views of ``packed`` for the length of a forward: made
        afresh every time, so they never point at a copy ``.to()`` replaced, and gone afterwards,
        so copying or pickling the module never meets a view (a non-leaf tensor)."""
        for slot, view in zip(self.slots, self.layer_tensors().values()):
            slot.module.__dict__[slot.attr] = view
        try:
            yield
        finally:
            for slot in self.slots:
                slot.module.__dict__.pop(slot.attr, None)

    def _pack_layer_keys(self, state_dict, prefix, *args) -> None:
        """A state dict saved with one tensor per layer (before packing) loads into ``packed``."""
        keys = [prefix + slot.name for slot in self.slots]
        if prefix + "packed" not in state_dict and all(k in state_dict for k in keys):
            state_dict[prefix + "packed"] = torch.cat([state_dict.pop(k).reshape(-1) for k in keys])

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, per_location: bool = False):
        if self.fusable and cond is None and not self.training and not torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type):
            from vadflow.nn.fused_flow import fused_forward

            return fused_forward(self.steps, x, per_location)  # same maths, a few fused passes (scoring)
        trains_fused = (self.training and not per_location and torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)
                        and all(bool(s.actnorm.initialized) for s in self.steps))  # the first batch initialises ActNorm eagerly
        if self.fusable and cond is None and trains_fused:
            from vadflow.nn.fused_flow import plane_train_forward

            return plane_train_forward(self.steps, x)  # same maths, fewer passes (training)
        if self.mlp_fusable and cond is not None and x.shape[2:] == (1, 1) and trains_fused:
            from vadflow.nn.fused_mlp_flow import mlp_flow_forward

            return mlp_flow_forward(self, x, cond)  # the same values, one autograd node (training)
        shape = (x.shape[0], x.shape[2], x.shape[3]) if per_location else (x.shape[0],)
        logdet = torch.zeros(shape, device=x.device, dtype=x.dtype)
        z = x
        with self.layers_bound() if self.slots else contextlib.nullcontext():
            for step in self.steps:
                z, logdet = step(z, logdet, cond)
        return z, logdet


def gaussian_log_prob(z: torch.Tensor, mean: float | torch.Tensor = 0.0, logs: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Sum over all but the batch dim of log N(z; mean, exp(logs)^2). The variance gets +1e-6 as
    in the official STG-NF code (keeps its outputs reproducible to 1e-5)."""
    if isinstance(logs, (int, float)):  # a fixed prior (STG-NF's N(R, I)): constants folded, one pass over z
        inv_var = 1.0 / (math.exp(2 * logs) + 1e-6)
        const = (2 * logs + math.log(2 * math.pi)) * z[0].numel()
        return -0.5 * ((z - mean).square().flatten(1).sum(1) * inv_var + const)
    logs = torch.as_tensor(logs, dtype=z.dtype, device=z.device)
    lp = -0.5 * (2 * logs + (z - mean) ** 2 / (torch.exp(2 * logs) + 1e-6) + math.log(2 * math.pi))
    return lp.flatten(1).sum(1)


def nll_bits_map(z: torch.Tensor, logdet_map: torch.Tensor, prior_mean: float) -> torch.Tensor:
    """Per-location NLL in bits per dimension, (B, T, V): its mean over locations is
    :func:`nll_bits_per_dim`."""
    z, logdet_map = z.float(), logdet_map.float()
    logs = torch.zeros((), dtype=z.dtype, device=z.device)
    lp = -0.5 * (2 * logs + (z - prior_mean) ** 2 / (torch.exp(2 * logs) + 1e-6) + math.log(2 * math.pi))
    return -(lp.sum(1) + logdet_map) / (math.log(2.0) * z.shape[1])


def masked_location_mean(values: torch.Tensor, vis: torch.Tensor | None) -> torch.Tensor:
    """Mean of a (B, T, V) map over detected locations (``vis``); all locations for a window
    with none detected, or without ``vis``."""
    flat = values.flatten(1)
    if vis is None:
        return flat.mean(1)
    mask = vis.flatten(1).to(flat.dtype)
    mask = torch.where(mask.sum(1, keepdim=True) > 0, mask, torch.ones_like(mask))
    return (flat * mask).sum(1) / mask.sum(1)


def nll_bits_per_dim(z: torch.Tensor, logdet: torch.Tensor, prior_mean: float) -> torch.Tensor:
    """Per-sample negative log-likelihood in bits per dimension (STG-NF's loss and score)."""
    n_dims = z[0].numel()
    z, logdet = z.float(), logdet.float()  # sums over ~900 dims: never in bf16
    return -(gaussian_log_prob(z, prior_mean) + logdet) / (math.log(2.0) * n_dims)


@torch.no_grad()
def training_mean_std(model: nn.Module, loader, columns, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) std over a loader's windows of ``columns(batch) -> (B, K)``, computed
    in eval mode without autocast, in float64; returned as float32 (K,) each, std at least 1e-6.
    For score standardisation fitted on training windows after training."""
    was_training = model.training
    model.eval()
    values = []
    with torch.autocast(device_type=device.type, enabled=False):
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            values.append(columns(batch).double())
    model.train(was_training)
    values = torch.cat(values)
    return values.mean(0).float(), values.std(0, unbiased=False).clamp_min(1e-6).float()


def pack_optimizer_state(model: nn.Module, saved_keys: list[str], optimizer_state: dict) -> bool:
    """Rewrites, in place, an optimiser state saved while ``model``'s packed flows still had one
    tensor per layer (``saved_keys``: that checkpoint's state-dict keys, in order), so that a run
    interrupted before packing resumes exactly: each packed parameter's per-element state (Adam's
    moments, Adamax's infinity norm) is the layers' states concatenated as their weights are, and
    its step count is theirs. Returns whether anything was rewritten."""
    packed = {(f"{prefix}." if prefix else "") + "packed": flow for prefix, flow in model.named_modules() if isinstance(flow, Flow) and flow.slots}
    groups = optimizer_state.get("param_groups", [])
    current = [name for name, p in model.named_parameters() if p.requires_grad]
    if not packed or len(groups) != 1 or len(groups[0]["params"]) == len(current):
        return False
    buffers = {name for name, _ in model.named_buffers()}
    saved_params = [k for k in saved_keys if k not in buffers]
    if len(saved_params) != len(groups[0]["params"]):
        raise ValueError(f"the saved optimiser state has {len(groups[0]['params'])} parameters and the saved weights {len(saved_params)}: "
                         "it does not belong to them")
    old = {name: groups[0]["params"][i] for i, name in enumerate(saved_params)}
    states, new_states = optimizer_state["state"], {}
    for j, name in enumerate(current):
        if name in packed:
            parts = [states.get(old[name.removesuffix("packed") + slot.name]) for slot in packed[name].slots]
            if any(part is None for part in parts):
                continue  # a parameter the optimiser has not stepped yet has no state
            new_states[j] = {key: torch.cat([part[key].reshape(-1) for part in parts]) if torch.is_tensor(value) and value.dim() > 0 else value
                             for key, value in parts[0].items()}
        elif old[name] in states:
            new_states[j] = states[old[name]]
    optimizer_state["state"], groups[0]["params"] = new_states, list(range(len(current)))
    return True
