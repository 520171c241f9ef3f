"""A method from its config: the model (head, backbone, conditioner; with ``trajectory=flow`` or
``trajectory=frame`` the pose model wrapped with the trajectory component, with ``trajectory=stream``
GMFC-VAE with its own global stream) and the training objective. Training, the
checkpoints, the benchmarks and the tests all build methods here."""
from __future__ import annotations

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from vadflow.config import to_plain
from vadflow.data.types import ConfigError
from vadflow.losses import check_terms
from vadflow.methods.trajectory_aware import DEFAULT_COMBINE

TRAJECTORY_TARGET = "vadflow.methods.trajectory_aware.TrajectoryAware"
FRAME_TARGET = "vadflow.methods.frame_windows.FrameWindows"
WRAPPERS = (TRAJECTORY_TARGET, FRAME_TARGET)  # models built around a pose model (their config's "pose")
STREAM_METHOD_TARGET = "vadflow.methods.gmfcvae.GMFCVAE"  # trajectory=stream: the method's own global stream
STREAM_KEYS = {"stream", "weight", "camera_dropout", "fusion", "score"}


def with_global_stream(model_cfg: dict, traj: dict, method: str) -> dict:
    """``trajectory=stream``: GMFC-VAE's model config with its third, global stream."""
    if model_cfg.get("_target_") != STREAM_METHOD_TARGET:
        raise ConfigError(f"trajectory=stream is GMFC-VAE's own global stream; method {method} takes trajectory=flow or trajectory=frame")
    streams = [s for s in model_cfg.get("streams", ("appearance", "motion")) if s != "global"] + ["global"]
    weights = {**model_cfg.get("stream_weights", {}), "global": traj.get("weight", 1.0)}
    return {**model_cfg, "streams": streams, "stream_weights": weights, "camera_dropout": traj.get("camera_dropout", 0.1),
            "global_fusion": traj.get("fusion", "sum"), "global_score": traj.get("score", "energy_recon")}


def method_config(cfg: DictConfig) -> dict:
    """The method's config as the checkpoint stores it: with ``trajectory=flow`` (or ``frame``) its
    model is the pose model wrapped with the trajectory component, so ``load_method`` rebuilds both."""
    method_cfg = to_plain(cfg.method)
    method_cfg["loss"] = to_plain(cfg.loss)  # stored with the weights: head, backbone, conditioner (in model) and loss
    traj = to_plain(cfg.trajectory) if cfg.get("trajectory") else {}
    if traj and "global" in method_cfg["model"].get("streams", ()) and "stream" not in traj:
        raise ConfigError("GMFC-VAE's global stream models the trajectory itself: use trajectory=stream, not a second component")
    if "stream" in traj:
        method_cfg["model"] = with_global_stream(method_cfg["model"], traj, method_cfg.get("name", "?"))
    elif traj.get("_target_") == FRAME_TARGET:
        method_cfg["model"] = {**traj, "pose": method_cfg["model"], "seg_len": method_cfg["model"]["seg_len"]}
    elif traj:
        combine, jacobian = traj.pop("combine", DEFAULT_COMBINE), traj.pop("normalisation_jacobian", False)
        statistics = traj.pop("statistics", "training")
        method_cfg["model"] = {"_target_": TRAJECTORY_TARGET, "pose": method_cfg["model"], "trajectory": traj, "combine": combine,
                               "normalisation_jacobian": jacobian, "statistics": statistics, "seg_len": method_cfg["model"]["seg_len"]}
    return method_cfg


def instantiate_model(model_cfg: dict, **kwargs):
    """``hydra.utils.instantiate``, with a combination that cannot work (a ``ConfigError`` raised
    inside a constructor, however deep) surfacing as that one line."""
    try:
        return hydra.utils.instantiate(model_cfg, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise


def build_model(model_cfg: dict, objective=None):
    """The model; ``objective`` (the pose model's, when wrapped) replaces the method's default."""
    extra = {} if objective is None else {"objective": objective}
    if model_cfg.get("_target_") not in WRAPPERS:
        return instantiate_model(model_cfg, **extra)
    pose = instantiate_model(model_cfg["pose"], **extra)
    return instantiate_model({**model_cfg, "pose": None}, pose=pose)


def build_method(method_cfg: dict, objective):
    """The method with the training objective. A combination that cannot work (a flow on
    GMFC-VAE's block, a loss weight for a term the method never produces) is one line here,
    before any data is read."""
    method = build_model(method_cfg["model"], objective)
    check_terms(objective, method, f"method {method_cfg.get('name', '?')}")
    return method


def trajectory_kind(method_cfg: dict) -> str:
    """Which trajectory component a method's config has: ``none``, ``flow``, ``frame`` or ``stream``."""
    if "global" in method_cfg["model"].get("streams", ()):
        return "stream"
    return {TRAJECTORY_TARGET: "flow", FRAME_TARGET: "frame"}.get(method_cfg["model"].get("_target_"), "none")
