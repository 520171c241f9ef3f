"""vadflow-eval ckpt_path=PATH [dataset=NAME]: score a test set with a trained checkpoint.

Accepts vadflow run checkpoints and the official STG-NF ``.tar`` checkpoints, e.g.

    vadflow-eval ckpt_path=../shared/reference/stgnf/ShanghaiTech_85_9.tar dataset=shanghaitech_sample
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf

from vadflow.checkpoint import load_method, read_checkpoint
from vadflow.config import CONF_DIR, datamodule_kwargs, set_threads, to_plain
from vadflow.data.datamodule import PoseDataModule
from vadflow.data.types import DataError
from vadflow.module import AnomalyModule, count_trainable
from vadflow.scoring import format_result
from vadflow.train import metrics_record, write_run_outputs

log = logging.getLogger("vadflow.evaluate")


def run_evaluation(cfg: DictConfig) -> dict:
    threads = set_threads(cfg.get("threads"))
    L.seed_everything(int(cfg.seed), verbose=False)
    ckpt = read_checkpoint(cfg.ckpt_path)
    method, method_cfg = load_method(ckpt, cfg.ckpt_path)
    if cfg.get("dataset") is not None:
        dataset_cfg = to_plain(cfg.dataset)
    elif "dataset" in ckpt:
        dataset_cfg = ckpt["dataset"]
    else:
        raise DataError(f"{cfg.ckpt_path}: an official STG-NF checkpoint needs dataset=NAME")
    seg_len = int(method_cfg["model"]["seg_len"])
    if int(dataset_cfg["seg_len"]) != seg_len:
        log.warning("window length set to the checkpoint's T=%d (dataset config says %s)", seg_len, dataset_cfg["seg_len"])
        dataset_cfg["seg_len"] = seg_len
    dm = PoseDataModule(**datamodule_kwargs(dataset_cfg, to_plain(cfg.paths)))
    module = AnomalyModule(method)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, default_root_dir=str(cfg.paths.output_dir))
    t0 = time.perf_counter()
    trainer.test(module, datamodule=dm, verbose=False)
    eval_seconds = time.perf_counter() - t0
    record = metrics_record(
        method_cfg, dataset_cfg["name"], int(cfg.seed), module.results, dm,
        n_params=count_trainable(method), eval_seconds=eval_seconds, checkpoint=str(cfg.ckpt_path), threads=threads,
    )
    if trainer.is_global_zero:
        out_dir = Path(cfg.paths.output_dir)
        write_run_outputs(out_dir, record, module, dm)
        for res in module.results:
            print(format_result(res, dataset_cfg["name"]) + f" | {method_cfg['name']} from {cfg.ckpt_path}")
            if cfg.get("print_frames"):
                with np.printoptions(precision=6, suppress=True, threshold=1_000_000, linewidth=120):
                    print(f"per-frame anomaly scores ({res['protocol']}, clips {', '.join(res['clips'])}):")
                    print(res["frame_scores"])
        print(f"frame scores written to {out_dir}")
    return record


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def main(cfg: DictConfig) -> float:
    from vadflow.cli import friendly_errors

    with friendly_errors():
        return float(run_evaluation(cfg)["auc"])


if __name__ == "__main__":
    main()
