# Sourced by the slim shell drivers: sets $top (the checkout) and $py (a Python with
# TensorFlow), as build.sh does, and puts the checkout on PYTHONPATH.
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ -x "$top/.venv/bin/python" ]; then
  py="$top/.venv/bin/python"
elif python3 -c 'import tensorflow' >/dev/null 2>&1; then
  py=python3          # e.g. inside a TensorFlow container
else
  echo "$(basename "$0"): no TensorFlow found: run $top/setup.sh first" \
       "(it creates $top/.venv)." >&2
  exit 1
fi
export PYTHONPATH="$top${PYTHONPATH:+:$PYTHONPATH}"
