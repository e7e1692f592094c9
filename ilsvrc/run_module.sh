#!/usr/bin/env bash
# ilsvrc/run_module.sh PROG MODULE [ARGS...]: what every shell front end shares
# (build.sh, verify.sh, slim/download_and_convert_imagenet.sh,
# slim/datasets/download_imagenet.sh).  Finds a Python with TensorFlow -- the
# checkout's .venv (see setup.sh), else python3 if it imports tensorflow (e.g. inside
# a TensorFlow container) -- and runs `python -m MODULE ARGS...` with the checkout on
# PYTHONPATH.
set -euo pipefail
prog=$1 module=$2
shift 2
top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [ -x "$top/.venv/bin/python" ]; then
  py="$top/.venv/bin/python"
elif python3 -c 'import tensorflow' >/dev/null 2>&1; then
  py=python3
else
  echo "$prog: no TensorFlow found: run $top/setup.sh first (it creates $top/.venv)." >&2
  exit 1
fi
export PYTHONPATH="$top${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m "$module" "$@"
