#!/usr/bin/env bash
# deploy/slurm/submit.sh [N]: index once, convert with an N-task array (default 16),
# then verify with an N-task array, each step after the previous one succeeded.
# Set ILSVRC_SRC, ILSVRC_OUT and ILSVRC_REPO (exported to the jobs) first.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
n=${1:-16}
index=$(sbatch --parsable --export=ALL "$here/index.sbatch")
convert=$(sbatch --parsable --export=ALL --dependency=afterok:$index \
  --array=0-$((n - 1)) "$here/convert.sbatch")
verify=$(sbatch --parsable --export=ALL --dependency=afterok:$convert \
  --array=0-$((n - 1)) "$here/verify.sbatch")
echo "index job $index, convert array $convert (tasks 0-$((n - 1))), verify array $verify"
