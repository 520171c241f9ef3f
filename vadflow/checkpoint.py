"""Run checkpoints: plain containers only, so ``torch.load`` with ``weights_only=True`` reads them.

Also reads the official STG-NF checkpoints (``orhir/STG-NF``), whose pickled ``args`` is an
``argparse.Namespace`` (allow-listed, nothing else is)."""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch
from omegaconf import OmegaConf

from vadflow.build import build_model
from vadflow.data.types import DataError
from vadflow.methods.stgnf import STGNF, is_official_checkpoint, load_official_state_dict

FORMAT = "vadflow-1"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def save_checkpoint(path, method: torch.nn.Module, method_cfg: dict, dataset_cfg: dict, metrics: dict, calibration: dict | None = None,
                    score_offsets: dict | None = None) -> None:
    """``calibration``: normal-data score quantiles for ``vadflow-score`` thresholds (plain lists);
    ``score_offsets``: the mocodad protocols' offsets, fixed from training windows, so
    ``vadflow-score --masks`` evaluates every protocol without the training data."""
    ckpt = {
        "format": FORMAT,
        "method": method_cfg,
        "dataset": dataset_cfg,
        "state_dict": {k: v.detach().cpu() for k, v in method.state_dict().items()},
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))},
    }
    if calibration is not None:
        ckpt["calibration"] = calibration
    if score_offsets:
        ckpt["score_offsets"] = {k: float(v) for k, v in score_offsets.items()}
    torch.save(ckpt, path)


def resolve_checkpoint(name) -> Path:
    """A checkpoint file, or a shipped model by name: the file's name without ``.ckpt``
    (``gmfcvae_hr_shanghaitech_stream``), or the method alone for its HR-ShanghaiTech model without a
    trajectory component (``stgnf``: ``pretrained/stgnf_hr_shanghaitech.ckpt``)."""
    path = Path(name)
    if path.is_file():
        return path
    for shipped in (PRETRAINED_DIR / f"{name}.ckpt", PRETRAINED_DIR / f"{name}_hr_shanghaitech.ckpt"):
        if shipped.is_file() and "/" not in str(name):
            return shipped
    known = sorted(p.stem for p in PRETRAINED_DIR.glob("*.ckpt"))
    raise DataError(f"{name}: checkpoint not found (a file, or a shipped model: {', '.join(known)})")


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: not a readable vadflow or STG-NF checkpoint ({exc})") from exc


def load_method(ckpt: dict, path="checkpoint", model_overrides: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the method from a checkpoint; returns (method in eval mode, method config).
    ``model_overrides``: constructor options that do not change the weights (e.g. a scoring
    option such as ``score_visible_only``)."""
    if is_official_checkpoint(ckpt):
        args = ckpt.get("args")
        seg_len = int(getattr(args, "seg_len", 24))
        R = float(getattr(args, "R", 3.0))
        K = int(getattr(args, "K", 8))
        model = STGNF(seg_len=seg_len, K=K, R=R, **dict(model_overrides or {}))
        load_official_state_dict(model, ckpt["state_dict"])
        cfg = {"name": "stgnf", "source": "official orhir/STG-NF checkpoint", "model": {"seg_len": seg_len, "K": K, "R": R, **dict(model_overrides or {})}}
        return model.eval(), cfg
    if ckpt.get("format") != FORMAT:
        raise DataError(f"{path}: unknown checkpoint format {ckpt.get('format')!r}")
    cfg = dict(ckpt["method"])
    if "pose" in cfg["model"]:  # trajectory-aware: scoring options belong to the pose model
        cfg["model"] = {**cfg["model"], "pose": {**cfg["model"]["pose"], **dict(model_overrides or {})}}
    else:
        cfg["model"] = {**cfg["model"], **dict(model_overrides or {})}
    model = build_model(cfg["model"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), cfg


def checkpoint_field(path, field: str) -> str:
    """``${vadflow_ckpt:${ckpt_path},dataset|method|seed}``: what a checkpoint says it was trained
    on, so ``vadflow-eval`` names its run directory after it ("unknown" when it cannot tell: the
    evaluation itself then reports why)."""
    try:
        resolved = resolve_checkpoint(str(path))
        return _checkpoint_names(str(resolved), resolved.stat().st_mtime_ns)[field]
    except Exception:  # noqa: BLE001  (a missing or unreadable file is reported by the evaluation, in one line)
        return "unknown"


@functools.lru_cache(maxsize=8)
def _checkpoint_names(path: str, mtime_ns: int) -> dict[str, str]:
    """The checkpoint read once for the three fields the run directory's name takes."""
    ckpt = read_checkpoint(path)
    if is_official_checkpoint(ckpt):
        return {"dataset": "unknown", "method": "stgnf", "seed": "_official"}
    return {"dataset": str((ckpt.get("dataset") or {}).get("name", "unknown")),
            "method": str((ckpt.get("method") or {}).get("name", "unknown")),
            "seed": str((ckpt.get("metrics") or {}).get("seed", "unknown"))}


if not OmegaConf.has_resolver("vadflow_ckpt"):  # conf/hydra/eval.yaml names vadflow-eval's run directory with it
    OmegaConf.register_new_resolver("vadflow_ckpt", checkpoint_field)
