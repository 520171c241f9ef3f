"""vadflow-train: train one method on one dataset, evaluate it, and write a self-contained run dir.

    vadflow-train                                        # STG-NF on the synthetic data
    vadflow-train experiment=stgnf/hr_shanghaitech seed=1
    vadflow-train -m dataset=hr_avenue seed=1,2,3         # Hydra multirun

The run directory holds .hydra/config.yaml (resolved config), model.ckpt (loads with
torch.load(weights_only=True)), metrics.json, window_scores.npz and the CSV log.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from vadflow.checkpoint import save_checkpoint
from vadflow.cli import friendly_errors, hydra_command
from vadflow.config import CONF_DIR, datamodule_kwargs, git_commit, set_threads, to_plain
from vadflow.config_check import check_config
from vadflow.data.datamodule import PoseDataModule
from vadflow.data.types import ConfigError, DataError
from vadflow.losses import check_terms
from vadflow.methods import needs_trajectory
from vadflow.methods.trajectory_aware import DEFAULT_COMBINE
from vadflow.module import AnomalyModule, count_trainable, load_evaluation
from vadflow.resume import Interrupted, epoch_checkpoints, last_checkpoint, resume_checkpoint, stop_on_signals
from vadflow.scoring import format_result

log = logging.getLogger("vadflow.train")


def build_loggers(cfg: DictConfig) -> list:
    if not cfg.get("logger"):
        return []
    return [hydra.utils.instantiate(c) for c in cfg.logger.values() if c is not None and "_target_" in c]


def metrics_record(cfg_method: dict, dataset_cfg: dict, seed: int, evaluation: dict, **extra) -> dict:
    """metrics.json: the headline protocol at top level, every protocol under ``protocols``."""
    results = evaluation["results"]
    head = results[0]
    record = {
        "method": cfg_method["name"],
        "dataset": dataset_cfg["name"],
        "protocol": head["protocol"],
        "smoothing": head["smoothing"],
        "seed": seed,
        "auc": head["auc"],
        "auc_raw": head["auc_raw"],
        "auc_macro": head["auc_macro"],
        "n_clips": head["n_clips"],
        "n_frames": head["n_frames"],
        "n_windows": evaluation["n_windows"],
        "n_train_windows": evaluation["n_train_windows"],
        "missing_joints": dataset_cfg.get("missing_joints", "impute"),
        "official_quirks": bool(dataset_cfg.get("official_quirks", False)),
        "short_tracks": dataset_cfg.get("short_tracks", "skip"),
        "protocols": {r["protocol"]: r for r in results},
        "prepare": evaluation.get("prepare", {}),
        "trajectory": cfg_method["model"].get("_target_") == TRAJECTORY_TARGET,  # the trajectory component
        "git_commit": git_commit(),
    }
    record.update(extra)
    return record


def log_to_wandb(loggers: list, cfg: DictConfig, record: dict, out_dir: Path, dm: PoseDataModule) -> None:
    """Resolved config, final metrics as the run summary, ROC curve and score timelines as images."""
    from lightning.pytorch.loggers import WandbLogger

    from vadflow.plots import evaluation_figures

    for lg in loggers:
        if not isinstance(lg, WandbLogger):
            continue
        run = lg.experiment
        run.config.update({k: v for k, v in to_plain(cfg).items() if k != "hydra"}, allow_val_change=True)
        summary = {k: v for k, v in record.items() if isinstance(v, (int, float, str))}
        for protocol, res in record["protocols"].items():
            summary.update({f"{protocol}/{k}": v for k, v in res.items() if isinstance(v, (int, float))})
        run.summary.update(summary)
        if dm.test_set is None:  # spawned strategies trained in other processes
            dm.setup()
        for protocol in record["protocols"]:
            figs = evaluation_figures(out_dir, dm.masks_for(protocol), protocol, record["dataset"])
            lg.log_image(key=f"{protocol}/roc", images=[str(f) for f in figs["roc"]])
            lg.log_image(key=f"{protocol}/score_over_time", images=[str(f) for f in figs["timelines"]])


def headline_figures(out_dir: Path, dm: PoseDataModule, record: dict) -> dict | None:
    """``figures/``: the ROC and the score over time of the clip with the most abnormal frames,
    under the headline protocol (the first of the dataset's ``protocols``)."""
    from vadflow.plots import evaluation_figures

    protocol = next(iter(record["protocols"]), None)
    if protocol is None:
        return None
    if dm.test_set is None:  # spawned strategies trained in other processes
        dm.setup()
    figs = evaluation_figures(out_dir, dm.masks_for(protocol), protocol, record["dataset"], n_clips=1)
    return {**figs, "protocol": protocol} if figs["timelines"] else None


def finish_wandb(failed: bool) -> None:
    """Close the W&B run of this job, also when it failed (multiruns start the next job clean)."""

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)


def report(record: dict, suffix: str) -> None:
    for res in record["protocols"].values():
        print(format_result(res, record["dataset"]) + suffix)


def run_training(cfg: DictConfig) -> dict:
    check_config(cfg)  # a key or value nothing can use fails here, before any data is read
    threads = set_threads(cfg.get("threads"))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    out_dir = Path(cfg.paths.output_dir)
    check_writable(out_dir)
    method_cfg = method_config(cfg)
    method = build_method(method_cfg, hydra.utils.instantiate(cfg.loss))
    dm = PoseDataModule(**datamodule_kwargs(to_plain(cfg.dataset), to_plain(cfg.paths), int(cfg.method.batch_size)),
                        trajectory_features=needs_trajectory(method))
    module = AnomalyModule(method, to_plain(cfg.method.optim), results_dir=str(out_dir))
    loggers = build_loggers(cfg)
    failed = True
    try:
        dm.prepare_data()  # read (or load the cache of) the data before Lightning starts: a bad file is one line, not a late crash
        record = _fit_and_test(cfg, method_cfg, dm, method, module, loggers, out_dir, threads)
        failed = False
        return record
    finally:
        finish_wandb(failed)


def check_writable(out_dir: Path, probe_bytes: int = 1 << 20) -> None:
    """Fail before training, not after it, when the run directory cannot take the run's files
    (read-only, or a full disk: a 1 MB probe is written and removed)."""
    probe = out_dir / ".write_probe"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * probe_bytes)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise DataError(f"run directory {out_dir} cannot be written ({exc.strerror or exc}): set hydra.run.dir to a writable folder") from None
    finally:
        probe.unlink(missing_ok=True)


TRAJECTORY_TARGET = "vadflow.methods.trajectory_aware.TrajectoryAware"


def method_config(cfg: DictConfig) -> dict:
    """The method's config as the checkpoint stores it: with ``trajectory=flow`` its model is the
    pose model wrapped with the trajectory component, so ``load_method`` rebuilds both."""
    method_cfg = to_plain(cfg.method)
    method_cfg["loss"] = to_plain(cfg.loss)  # stored with the weights: head, backbone, conditioner (in model) and loss
    traj = to_plain(cfg.trajectory) if cfg.get("trajectory") else {}
    if traj:
        combine, jacobian = traj.pop("combine", DEFAULT_COMBINE), traj.pop("normalisation_jacobian", False)
        method_cfg["model"] = {"_target_": TRAJECTORY_TARGET, "pose": method_cfg["model"], "trajectory": traj,
                               "combine": combine, "normalisation_jacobian": jacobian, "seg_len": method_cfg["model"]["seg_len"]}
    return method_cfg


def build_method(method_cfg: dict, objective):
    """The method with the training objective (the pose model's, when wrapped). A combination
    that cannot work (a flow on GMFC-VAE's block, a loss weight for a term the method never
    produces) is one line here, before any data is read."""
    model_cfg = method_cfg["model"]
    try:
        if model_cfg.get("_target_") != TRAJECTORY_TARGET:
            method = hydra.utils.instantiate(model_cfg, objective=objective)
        else:
            pose = hydra.utils.instantiate(model_cfg["pose"], objective=objective)
            method = hydra.utils.instantiate({**model_cfg, "pose": None}, pose=pose)
    except InstantiationException as exc:
        cause = exc.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise
    check_terms(objective, method, f"method {method_cfg.get('name', '?')}")
    return method


def fit_statistics(method, dm: PoseDataModule) -> None:
    """Methods that need statistics of the training data after training (score standardisation,
    an untrained model's ActNorm) define ``fit_statistics(loader)``. It runs in this process on
    every training window in a fixed order, so every rank and every strategy gets the same values."""
    if not hasattr(method, "fit_statistics"):
        return
    if dm.train_set is None:  # spawned strategies set the datamodule up in other processes
        dm.setup("fit")
    method.fit_statistics(dm.statistics_dataloader())


def calibrate(method, dm: PoseDataModule, cfg: DictConfig) -> dict:
    """The false-alarm-rate calibration ``vadflow-score`` thresholds with: quantiles of the
    scoring pipeline's frame scores on the normal training clips."""
    from vadflow.score_tracks import calibrate_method

    if getattr(dm, "train", None) is None:  # spawned strategies set the datamodule up elsewhere
        dm.setup("fit")
    t0 = time.perf_counter()
    cal = calibrate_method(method, dm.train, to_plain(cfg.dataset), int(cfg.method.model.seg_len))
    log.info("calibration: %d normal training frames scored in %.1f s", cal["n_frames"], time.perf_counter() - t0)
    return cal


def _fit_and_test(cfg, method_cfg: dict, dm, method, module, loggers, out_dir: Path, threads: int) -> dict:
    ckpt_path = resume_checkpoint(cfg.get("resume"), out_dir)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    callbacks = epoch_checkpoints(out_dir) if cfg.get("save_every_epoch", True) else []
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, default_root_dir=str(out_dir), callbacks=callbacks,
                                      **({"enable_checkpointing": True} if callbacks else {}))
    t0 = time.perf_counter()
    if int(cfg.trainer.max_epochs) > 0 and count_trainable(method) > 0:
        try:
            with stop_on_signals():
                trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        except Interrupted as stop:
            where = (f"the last complete epoch is in {last_checkpoint(out_dir)}: continue with resume={out_dir}"
                     if last_checkpoint(out_dir).is_file() else "no epoch was complete: start again")
            print(f"vadflow: interrupted by {stop.what} during epoch {trainer.current_epoch + 1}; {where}", file=sys.stderr)
            sys.exit(stop.exit_code)
    else:  # e.g. DA-Flow's random_projection mode: nothing is trained
        log.info("no training: %d epochs, %d trainable parameters", int(cfg.trainer.max_epochs), count_trainable(method))
    fit_statistics(method, dm)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.test(module, datamodule=dm, verbose=False)
    eval_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:  # strategy "ddp" re-runs this script on every rank
        return {}
    record = metrics_record(
        method_cfg, to_plain(cfg.dataset), int(cfg.seed), load_evaluation(out_dir),
        loss=type(method.objective).__name__ if hasattr(method, "objective") else None,
        n_params=count_trainable(method), train_seconds=train_seconds, eval_seconds=eval_seconds,
        epochs=int(trainer.current_epoch), threads=threads, world_size=trainer.world_size, precision=str(trainer.precision),
        nonfinite_loss_steps=module.n_nonfinite_loss,  # counted in this process (all steps unless spawned)
    )
    if "val/loss" in trainer.callback_metrics:  # held-out normal clips (dataset.val_fraction > 0)
        record["val_loss"] = float(trainer.callback_metrics["val/loss"])
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    calibration = calibrate(method, dm, cfg) if cfg.get("calibrate", True) else None
    save_checkpoint(out_dir / "model.ckpt", method, method_cfg, to_plain(cfg.dataset), record, calibration)
    figures = headline_figures(out_dir, dm, record) if cfg.get("figures", True) else None
    log_to_wandb(loggers, cfg, record, out_dir, dm)
    report(record, f" | {cfg.method.name} seed {cfg.seed}")
    print(f"run directory: {out_dir}")
    if figures:
        print(f"score over time ({record['dataset']}, {figures['protocol']} protocol): {figures['timelines'][0]}")
    return record


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _main(cfg: DictConfig) -> float:
    with friendly_errors():
        record = run_training(cfg)
    return float(record["auc"])


main = hydra_command(_main, "train")


if __name__ == "__main__":
    main()
