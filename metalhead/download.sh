#!/usr/bin/env bash
# Download the ImageNet archive for Metalhead from Kaggle with the official client.
#   metalhead/download.sh DIR   ->  DIR/imagenet-object-localization-challenge.zip
# Uses the project's virtualenv (<repo>/.venv, made by ./setup.sh) and installs the
# pinned kaggle client (metalhead/requirements.txt) into it when it is missing.
# Credentials: kaggle.json or environment variables, never arguments (docs/metalhead.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
py="$top/.venv/bin/python"

usage="usage: metalhead/download.sh DIR   (--help says more)"
help="usage: metalhead/download.sh DIR
Fetches imagenet-object-localization-challenge.zip (about 155 GB) from Kaggle into DIR
with the official kaggle client, first installed into .venv at the version pinned in
metalhead/requirements.txt when it is not there. Credentials come from kaggle.json or
KAGGLE_USERNAME and KAGGLE_KEY, never from arguments (docs/metalhead.md). Run again
after an interruption, it resumes the partial file.
  -h, --help  this text"
case "${1:-}" in
  -h|--help) echo "$help"; exit 0 ;;
esac
if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then
  echo "$usage" >&2
  exit 2
fi
if [ ! -x "$py" ]; then
  echo "download.sh: error: no virtualenv at $top/.venv: run $top/setup.sh, then rerun." >&2
  exit 1
fi
# The pin matters (see README.md); compare installed versions without importing kaggle,
# whose import has side effects (it creates a config folder and tries to authenticate).
if ! "$py" - "$top/metalhead/requirements.txt" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    name, _, want = line.strip().partition("==")
    if name and version(name) != want:
        sys.exit(1)
PY
then
  echo "download.sh: installing the pinned kaggle client into $top/.venv ..." >&2
  if ! "$py" -m pip install -q --disable-pip-version-check -r "$top/metalhead/requirements.txt"; then
    echo "download.sh: error: could not install metalhead/requirements.txt into $top/.venv: check network access to PyPI, then rerun." >&2
    exit 1
  fi
fi
exec "$py" "$top/metalhead/kaggle_download.py" "$1"
