#!/usr/bin/env bash
# STG-NF, official hyperparameters, 3 seeds on each real dataset; with missing-joint imputation
# (default) and with the official zeros-as-joints behaviour. Results: runs/train/<dataset>/stgnf/*/metrics.json
set -u
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"1 2 3"}
for missing in impute zeros; do
  for ds in hr_avenue poselift hr_shanghaitech; do
    for seed in $SEEDS; do
      echo "=== $ds missing=$missing seed=$seed $(date +%T)"
      .venv/bin/vadflow-train experiment=stgnf/$ds seed=$seed dataset.missing_joints=$missing logger=none threads=${THREADS:-2} 2>&1 | grep -E "AUC|Error|error:|run directory" || echo "FAILED $ds $missing $seed"
    done
  done
done
echo "=== done $(date +%T)"
