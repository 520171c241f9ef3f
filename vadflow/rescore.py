"""Re-evaluate trained runs with other scoring options, the weights unchanged: each run's
checkpoint through ``vadflow-eval`` into ``RUN/<name>/``, which ``python -m vadflow.table`` reads
beside the run's own scores.

    python -m vadflow.rescore --name eval_short_reflect --dataset short_tracks=reflect RUN_DIR ...
    python -m vadflow.rescore --name eval_visible_only --model score_visible_only=true RUN_DIR ...

Flow runs (stgnf, daflow, dsnf) are scored over detected joints as their table rows are
(``--model score_visible_only=true`` is added for them unless given).
"""
from __future__ import annotations

import argparse
from pathlib import Path

FLOWS = ("stgnf", "daflow", "dsnf")


def rescore_run(run: Path, name: str, dataset: list[str], model: list[str], threads: int) -> dict:
    import json

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vadflow.config import CONF_DIR
    from vadflow.evaluate import run_evaluation

    method = json.loads((run / "metrics.json").read_text())["method"]
    if method in FLOWS and not any(m.startswith("score_visible_only=") for m in model):
        model = model + ["score_visible_only=true"]
    overrides = [f"ckpt_path={run / 'model.ckpt'}", f"paths.output_dir={run / name}", f"threads={threads}", "figures=false"]
    overrides += [f"+dataset_overrides.{o}" for o in dataset] + [f"+model_overrides.{o}" for o in model]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="eval", overrides=overrides)
    record = run_evaluation(cfg)
    # the options beside the scores, as a Hydra run keeps them: python -m vadflow.table reads them back
    (run / name / ".hydra").mkdir(parents=True, exist_ok=True)
    (run / name / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return record


def main(argv=None) -> int:
    from vadflow.cli import friendly_errors

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--name", required=True, help="folder inside each run (eval_short_<mode>, eval_visible_only: the table's names)")
    ap.add_argument("--dataset", action="append", default=[], metavar="KEY=VALUE", help="a dataset option (repeatable)")
    ap.add_argument("--model", action="append", default=[], metavar="KEY=VALUE", help="a scoring option of the model (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    with friendly_errors():
        for run in args.runs:
            record = rescore_run(run, args.name, args.dataset, args.model, args.threads)
            print(f"{run}: {record['dataset']} {record['protocol']} AUC {100 * record['auc']:.2f} -> {run / args.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
