"""vadflow-eval ckpt_path=PATH [dataset=NAME]: score a test set with a trained checkpoint.

Accepts vadflow run checkpoints and the official STG-NF ``.tar`` checkpoints, e.g.

    vadflow-eval ckpt_path=../shared/reference/stgnf/ShanghaiTech_85_9.tar dataset=shanghaitech_sample
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import lightning as L
import numpy as np
from omegaconf import DictConfig

from vadflow import scoring
from vadflow.checkpoint import load_method, read_checkpoint, resolve_checkpoint
from vadflow.cli import friendly_errors, hydra_command
from vadflow.config import CONF_DIR, datamodule_kwargs, set_threads, to_plain
from vadflow.config_check import check_dataset
from vadflow.console import progress_bar, quiet
from vadflow.data.datamodule import PoseDataModule
from vadflow.data.types import DataError
from vadflow.methods import needs_trajectory
from vadflow.module import AnomalyModule, count_trainable
from vadflow.runs import evaluate_run, metrics_record, report, run_figures

log = logging.getLogger("vadflow.evaluate")


def run_evaluation(cfg: DictConfig) -> dict:
    quiet(bool(cfg.get("verbose", False)))
    threads = set_threads(cfg.get("threads"))
    L.seed_everything(int(cfg.seed), verbose=False)
    ckpt_path = resolve_checkpoint(cfg.ckpt_path)  # a file, or a shipped model's name
    ckpt = read_checkpoint(ckpt_path)
    method, method_cfg = load_method(ckpt, ckpt_path, to_plain(cfg.get("model_overrides")) or {})
    if cfg.get("dataset") is not None:
        dataset_cfg = to_plain(cfg.dataset)
    elif "dataset" in ckpt:
        dataset_cfg = ckpt["dataset"]
    else:
        raise DataError(f"{ckpt_path}: an official STG-NF checkpoint needs dataset=NAME")
    dataset_cfg.update(to_plain(cfg.get("dataset_overrides")) or {})
    check_dataset(dataset_cfg)
    seg_len = int(method_cfg["model"]["seg_len"])
    if int(dataset_cfg["seg_len"]) != seg_len:
        log.warning("window length set to the checkpoint's T=%d (dataset config says %s)", seg_len, dataset_cfg["seg_len"])
        dataset_cfg["seg_len"] = seg_len
    protocols = scoring.protocols_of(dataset_cfg)
    dm = PoseDataModule(**datamodule_kwargs(dataset_cfg, to_plain(cfg.paths)), trajectory_features=needs_trajectory(method))
    out_dir = Path(cfg.paths.output_dir)
    module = AnomalyModule(method, results_dir=str(out_dir), score_training_windows=scoring.needs_training_scores(protocols))
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, default_root_dir=str(cfg.paths.output_dir),
                                      enable_progress_bar=progress_bar(cfg.trainer))
    t0 = time.perf_counter()
    trainer.test(module, datamodule=dm, verbose=False)
    eval_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return {}
    seed = int(ckpt.get("metrics", {}).get("seed", cfg.seed))  # the checkpoint's training seed
    record = metrics_record(
        method_cfg, dataset_cfg, seed, evaluate_run(out_dir, dm, protocols),
        n_params=count_trainable(method), eval_seconds=eval_seconds, checkpoint=str(ckpt_path), threads=threads,
        world_size=trainer.world_size,
    )
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    if cfg.get("figures", True):
        run_figures(out_dir, dm, record)
    report(record, f" | {method_cfg['name']} from {ckpt_path}")
    if cfg.get("print_frames"):
        for protocol in record["protocols"]:
            saved = np.load(out_dir / f"frame_scores_{protocol}.npz")
            with np.printoptions(precision=6, suppress=True, threshold=1_000_000, linewidth=120):
                print(f"per-frame anomaly scores ({protocol} protocol, clips {', '.join(saved['clips'])}):")
                print(saved["scores"])
    if cfg.get("save_maps"):
        save_score_maps(method, dm, out_dir, dataset_cfg, to_plain(cfg.paths))
    print(f"frame scores written to {out_dir}")
    return record


def save_score_maps(method, dm: PoseDataModule, out_dir: Path, dataset_cfg: dict, paths_cfg: dict) -> Path | None:
    """``score_maps.npz``: per-window, per-frame, per-joint anomaly maps of a method that defines
    ``score_map(batch) -> (B, T, V)`` (fp32, float16 on disk), with each window's index, score, clip,
    person and first frame, plus the dataset and paths configs (JSON) so ``vadflow.localize`` can
    rebuild the windows' coordinates."""
    if not hasattr(method, "score_map"):
        log.warning("save_maps: %s has no score_map(batch); nothing written", type(method).__name__)
        return None
    import torch

    index, maps, scores = [], [], []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            index.append(batch["index"].numpy())
            scores.append(method.score(batch).double().numpy())
            maps.append(method.score_map(batch).float().clamp(-6e4, 6e4).numpy().astype(np.float16))
    index = np.concatenate(index)
    path = out_dir / "score_maps.npz"
    w = dm.test_windows
    np.savez(path, index=index, maps=np.concatenate(maps), score=np.concatenate(scores), clip=w.clip[index], person=w.person[index],
             start=w.first[index], dataset=json.dumps(dataset_cfg), paths=json.dumps(paths_cfg))
    print(f"score maps written to {path}")
    return path


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _main(cfg: DictConfig) -> float:
    with friendly_errors():
        return float(run_evaluation(cfg)["auc"])


main = hydra_command(_main, "eval")


if __name__ == "__main__":
    main()
