#!/usr/bin/env bash
# Same-machine A/B of training throughput: an older commit against the working tree, alternating
# runs (this machine's speed drifts by up to ~30 % over an hour, so never compare far-apart runs).
#   experiments/speed_ab.sh OLD_COMMIT [METHODS...]      (default methods: stgnf daflow dsnf)
set -euo pipefail
old=$1; shift
methods=${*:-stgnf daflow dsnf}
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
export_dir=$(mktemp -d)
git -C "$repo" archive "$old" vadflow | tar -x -C "$export_dir"
cd /tmp  # not the repo: the script's own folder and PYTHONPATH decide which vadflow is imported
for m in $methods; do for i in 1 2; do
  echo -n "$old  "; PYTHONPATH=$export_dir "$py" "$repo/experiments/train_step_throughput.py" 1 "$m"
  echo -n "work     "; "$py" "$repo/experiments/train_step_throughput.py" 1 "$m"
done; done
rm -rf "$export_dir"
