"""vadflow-prepare dataset=NAME: turn a raw dataset into its cache (training does it on first use)."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from vadflow.cli import friendly_errors, hydra_command
from vadflow.config import CONF_DIR, set_threads, to_plain
from vadflow.config_check import check_config
from vadflow.data.cache import load_prepared
from vadflow.data.readers import SkipLog


def run_prepare(cfg: DictConfig) -> dict:
    set_threads(cfg.get("threads"))
    check_config(cfg)
    ds, paths = to_plain(cfg.dataset), to_plain(cfg.paths)
    train, test, info = load_prepared(
        ds["name"], paths["data_root"], paths["cache_dir"], ds["missing_joints"], ds["conf_threshold"], ds.get("synthetic"), force=bool(cfg.force),
        fix_train_frame_offset=bool(ds.get("fix_train_frame_offset", False)), strict=bool(ds.get("strict", False)),
    )
    skipped = SkipLog.from_summary(info["skipped"])
    how = "loaded from cache" if info["cached"] else "prepared"
    print(
        f"{ds['name']}: {how} in {info['seconds']:.1f} s -> {info['cache']}\n"
        f"  train: {train.n_tracks} tracks, {len(train.frames)} poses, {len(train.clips)} clips\n"
        f"  test:  {test.n_tracks} tracks, {len(test.frames)} poses, {len(test.masks)} labelled clips"
        + ("".join(f"\n  skipped: {line}" for line in skipped.lines(ds["name"])) if info["cached"] else "")  # else logged as it happened
        + (f"\n  every skipped file: {Path(info['cache']).with_suffix('.skipped.json')}" if skipped else "")
    )
    return info


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def _main(cfg: DictConfig) -> None:
    with friendly_errors():
        run_prepare(cfg)


main = hydra_command(_main, "prepare")


if __name__ == "__main__":
    main()
