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
import sys
import time
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from vadflow import scoring
from vadflow.build import build_method, method_config
from vadflow.checkpoint import save_checkpoint
from vadflow.cli import friendly_errors, hydra_command
from vadflow.config import CONF_DIR, datamodule_kwargs, set_threads, to_plain
from vadflow.config_check import check_config
from vadflow.console import EpochLines, progress_bar, quiet
from vadflow.data.datamodule import PoseDataModule
from vadflow.methods import needs_trajectory, reads_trajectory_summary
from vadflow.module import AnomalyModule, count_trainable
from vadflow.resume import Interrupted, epoch_checkpoints, last_checkpoint, resume_checkpoint, stop_on_signals
from vadflow.losses import Objective
from vadflow.loggers import build_loggers, finish_wandb, log_to_wandb
from vadflow.runs import calibrate, check_writable, evaluate_run, fit_on_training_windows, metrics_record, report, run_figures

log = logging.getLogger("vadflow.train")


def run_training(cfg: DictConfig) -> dict:
    """Top down: the config checked, the run directory, the method and its protocols, the
    loggers, then the data: every mistake in the config stops the run before any data is read."""
    check_config(cfg)  # a key or value nothing can use fails here, before any data is read
    out_dir = Path(cfg.paths.output_dir)
    check_writable(out_dir)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    method_cfg = method_config(cfg)
    method = build_method(method_cfg, hydra.utils.instantiate(cfg.loss))
    trajectory_features = needs_trajectory(method)  # batches carry the box trajectory and camera
    protocols = scoring.protocols_of(to_plain(cfg.dataset))
    module = AnomalyModule(method, to_plain(cfg.method.optim), results_dir=str(out_dir),
                           score_training_windows=scoring.needs_training_scores(protocols))
    loggers = build_loggers(cfg)
    dm = PoseDataModule(**datamodule_kwargs(to_plain(cfg.dataset), to_plain(cfg.paths), int(cfg.method.batch_size)),
                        trajectory_features=trajectory_features, trajectory_summary=reads_trajectory_summary(method))
    threads = set_threads(cfg.get("threads"))
    quiet(bool(cfg.get("verbose", False)))
    failed = True
    try:
        dm.prepare_data()  # read (or load the cache of) the data before Lightning starts: a bad file is one line, not a late crash
        record = _fit_and_test(cfg, method_cfg, dm, method, module, protocols, loggers, out_dir, threads)
        failed = False
        return record
    finally:
        finish_wandb(failed)


def _fit_and_test(cfg, method_cfg: dict, dm, method, module, protocols: list, loggers, out_dir: Path, threads: int) -> dict:
    ckpt_path = resume_checkpoint(cfg.get("resume"), out_dir)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    callbacks = epoch_checkpoints(out_dir) if cfg.get("save_every_epoch", True) else []
    show_bar = progress_bar(cfg.trainer)
    if not show_bar:  # a redirected log: one line per epoch
        callbacks = callbacks + [EpochLines()]
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, default_root_dir=str(out_dir), callbacks=callbacks,
                                      enable_progress_bar=show_bar, **({"enable_checkpointing": True} if callbacks else {}))
    t0 = time.perf_counter()
    fit_on_training_windows(method, dm, "fit_reference")  # before training (a resumed run reloads the same values)
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
    fit_on_training_windows(method, dm, "fit_statistics")
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.test(module, datamodule=dm, verbose=False)
    eval_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:  # strategy "ddp" re-runs this script on every rank
        return {}
    evaluation = evaluate_run(out_dir, dm, protocols)
    record = metrics_record(
        method_cfg, to_plain(cfg.dataset), int(cfg.seed), evaluation,
        loss=method.objective.name if isinstance(getattr(method, "objective", None), Objective) else None,
        n_params=count_trainable(method), train_seconds=train_seconds, eval_seconds=eval_seconds,
        epochs=int(trainer.current_epoch), threads=threads, world_size=trainer.world_size, precision=str(trainer.precision),
        nonfinite_loss_steps=module.n_nonfinite_loss,  # counted in this process (all steps unless spawned)
    )
    if "val/loss" in trainer.callback_metrics:  # held-out normal clips (dataset.val_fraction > 0)
        record["val_loss"] = float(trainer.callback_metrics["val/loss"])
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    calibration = calibrate(method, dm, to_plain(cfg.dataset), int(cfg.method.model.seg_len)) if cfg.get("calibrate", True) else None
    save_checkpoint(out_dir / "model.ckpt", method, method_cfg, to_plain(cfg.dataset), record, calibration, evaluation["score_offsets"])
    figures = run_figures(out_dir, dm, record) if cfg.get("figures", True) else {}
    log_to_wandb(loggers, cfg, record, figures)
    report(record, f" | {cfg.method.name} seed {cfg.seed}")
    print(f"run directory: {out_dir}")
    headline = figures.get(record["protocol"], {}).get("timelines")
    if headline:
        print(f"score over time ({record['dataset']}, {record['protocol']} protocol): {headline[0]}")
    return record


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _main(cfg: DictConfig) -> float:
    with friendly_errors():
        record = run_training(cfg)
    return float(record["auc"])


main = hydra_command(_main, "train")


if __name__ == "__main__":
    main()
