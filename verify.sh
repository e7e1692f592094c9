#!/usr/bin/env bash
# ./verify.sh FORMAT OUT_DIR [--source DIR] [-j N]  --  see ./verify.sh --help
# Re-reads every shard of a finished conversion (FORMAT: official or slim) and checks
# names, record CRCs, features, labels and counts; with --source DIR also that every
# image of the source is there exactly once with its label.  Exit status 0 = all good.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
if [ -x "$top/.venv/bin/python" ]; then
  py="$top/.venv/bin/python"
elif python3 -c 'import tensorflow' >/dev/null 2>&1; then
  py=python3          # e.g. inside a TensorFlow container
else
  echo "verify.sh: no TensorFlow found: run $top/setup.sh first (it creates $top/.venv)." >&2
  exit 1
fi
export PYTHONPATH="$top${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m ilsvrc.cli_verify "$@"
