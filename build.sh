#!/usr/bin/env bash
# ./build.sh /path-to-tar-files [options]   --  see ./build.sh --help
# Converts the ILSVRC2012 tars into TF official ResNet TFRecords under
# /path-to-tar-files/tf_records/{train,validation}, reading the tars in place.
set -euo pipefail
top=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
if [ -x "$top/.venv/bin/python" ]; then
  py="$top/.venv/bin/python"
elif python3 -c 'import tensorflow' >/dev/null 2>&1; then
  py=python3          # e.g. inside a TensorFlow container
else
  echo "build.sh: no TensorFlow found: run $top/setup.sh first (it creates $top/.venv)." >&2
  exit 1
fi
export PYTHONPATH="$top${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m ilsvrc.cli_build "$@"
