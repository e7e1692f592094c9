#!/usr/bin/env bash
# deploy/slurm/submit.sh [N] [SBATCH OPTIONS...]
#
# Submits the three steps: index.sbatch once, convert.sbatch as an N-task array
# (--array=0-(N-1); N defaults to 16), then verify.sbatch as an N-task array, each
# after the previous step succeeded.  A step that fails cancels the steps after it
# (--kill-on-invalid-dep=yes) instead of leaving them pending forever.
#
# SBATCH OPTIONS go to all three sbatch calls and override the recipes' #SBATCH
# defaults (16 CPUs per task; 8 GB for index, 24 GB for convert and verify; 30 min,
# 2 h, 30 min), e.g.
#   deploy/slurm/submit.sh 8 --partition=short --cpus-per-task=4 --mem=8G --time=4:00:00
# submit.sh itself sets --array, --dependency, --export and --kill-on-invalid-dep.
# Before submitting anything it asks Slurm whether each step could run at all
# (sbatch --test-only): a request the partition cannot satisfy (more CPUs or memory
# than its nodes have, another partition's limits) stops here with Slurm's message,
# rather than pending forever with reason PartitionConfig.
#
# Set ILSVRC_SRC, ILSVRC_OUT and ILSVRC_REPO first: the jobs get this environment
# (--export=ALL), the two arrays with ILSVRC_TASK_COUNT=N, so that the array index is
# the task number (a rerun of one task, --array=5, is task 5 of N).  submit.sh prints
# the job ids, array ranges and options, and the commands that rerun one failed
# convert task and then verify, with the same options.
set -euo pipefail
prog=submit.sh
here=$(dirname "$(readlink -f "$0")")
n=16
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  n=$((10#$1))
  shift
fi
if [ "$n" -lt 1 ]; then
  echo "$prog: the number of tasks must be 1 or more" >&2
  exit 2
fi
for a in "$@"; do
  case $a in
    -a | -a?* | --array | --array=* | -d | -d?* | --dependency | --dependency=* | \
      --export | --export=* | --kill-on-invalid-dep | --kill-on-invalid-dep=* | \
      --parsable | --test-only | --wrap | --wrap=*)
      echo "$prog: $a: submit.sh sets --array, --dependency, --export and" \
        "--kill-on-invalid-dep itself; give the other sbatch options (CPUs, memory," \
        "partition, time, account, ...)" >&2
      exit 2 ;;
  esac
done
opts=("$@")
last=$((n - 1))
count="--export=ALL,ILSVRC_TASK_COUNT=$n"

quoted() { # the arguments, quoted for a shell command line
  local out="" a
  for a in "$@"; do out+=" $(printf '%q' "$a")"; done
  printf '%s' "${out# }"
}
shown=$(quoted ${opts[@]+"${opts[@]}"})

# 1. Could each step run at all?  Nothing is submitted unless all three could.
for step in "index.sbatch" "convert.sbatch --array=0-$last" "verify.sbatch --array=0-$last"; do
  read -r file array <<<"$step"
  if ! said=$(sbatch --test-only ${array:+"$array"} ${opts[@]+"${opts[@]}"} \
    "$here/$file" 2>&1); then
    echo "$prog: Slurm would never run $file with ${shown:-its defaults}:" >&2
    sed 's/^/  /' <<<"$said" >&2
    echo "$prog: nothing was submitted; give options that fit the partition, e.g." \
      "$prog $n --partition=P --cpus-per-task=C --mem=M --time=T (see sinfo -o" \
      "'%P %c %m %l')" >&2
    exit 1
  fi
done

# 2. Submit; if a later step cannot be submitted, cancel the earlier ones.
submitted=()
submit() { # sbatch ARGS...: print the job id (runs in a subshell: submitted is the caller's)
  local id
  if ! id=$(sbatch --parsable "$@"); then
    if [ ${#submitted[@]} -gt 0 ]; then
      scancel "${submitted[@]}" || true
      echo "$prog: cancelled job(s) ${submitted[*]}: nothing of this run is left" \
        "queued" >&2
    fi
    exit 1
  fi
  printf '%s' "${id%%;*}"
}
index=$(submit ${opts[@]+"${opts[@]}"} "$here/index.sbatch")
submitted=("$index")
convert=$(submit "$count" --dependency="afterok:$index" --kill-on-invalid-dep=yes \
  --array="0-$last" ${opts[@]+"${opts[@]}"} "$here/convert.sbatch")
submitted+=("$convert")
verify=$(submit "$count" --dependency="afterok:$convert" --kill-on-invalid-dep=yes \
  --array="0-$last" ${opts[@]+"${opts[@]}"} "$here/verify.sbatch")

cat <<EOF
$prog: $n tasks; sbatch options for every step: ${shown:-none (the defaults of the recipes)}
  source ${ILSVRC_SRC:-/shared/imagenet}, output ${ILSVRC_OUT:-/shared/imagenet/tf_records}, checkout ${ILSVRC_REPO:-/shared/imagenet-prep}
  index   job $index: index.sbatch
  convert job $convert, array 0-$last: convert.sbatch, after job $index succeeded
  verify  job $verify, array 0-$last: verify.sbatch, after every task of job $convert succeeded
  logs: ilsvrc-index-$index.log, ilsvrc-convert-${convert}_<task>.log, ilsvrc-verify-${verify}_<task>.log (appended to when a task is requeued)
A step that fails cancels the steps after it (squeue -j $index,$convert,$verify -t all).
To rerun convert task I alone (with ILSVRC_SRC, ILSVRC_OUT, ILSVRC_REPO set as now), then verify:
  sbatch --array=I $count $(quoted ${opts[@]+"${opts[@]}"} "$here/convert.sbatch")
  sbatch --array=0-$last $count --dependency=afterok:JOB --kill-on-invalid-dep=yes $(quoted ${opts[@]+"${opts[@]}"} "$here/verify.sbatch")
(JOB: the job id the first command printed)
EOF
