#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv at .venv inside the checkout and install
# what the converters need.  `./setup.sh --test` also installs the test tools;
# `./setup.sh --gcs` the Cloud Storage client for gs:// paths (docs/cloud-storage.md);
# `./setup.sh --hf` the Hugging Face client for `./download.sh hf` (docs/sources.md).
# Safe to rerun: an up-to-date .venv is left alone.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
venv="$top/.venv"
py=${PYTHON:-python3}

want_test=0
want_gcs=0
want_hf=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    --gcs) want_gcs=1 ;;
    --hf) want_hf=1 ;;
    -h|--help) echo "usage: ./setup.sh [--test] [--gcs] [--hf]   (creates $venv; --gcs: gs:// support; --hf: ./download.sh hf, the Hugging Face copy)"; exit 0 ;;
    *) echo "setup.sh: unknown option '$a' (try --help)" >&2; exit 2 ;;
  esac
done

# TensorFlow 2.21 has wheels for Python 3.10-3.13 only: check before pip runs.
supported() { "$1" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; }
if ! supported "$py"; then
  other=""
  for cand in python3.13 python3.12 python3.11 python3.10; do
    if command -v "$cand" >/dev/null && supported "$cand"; then other=$(command -v "$cand"); break; fi
  done
  if [ -n "$other" ]; then hint="rerun as: PYTHON=$other ./setup.sh"; else hint="install Python 3.10-3.13 and rerun with PYTHON=/path/to/python3.x"; fi
  found=$("$py" --version 2>&1 | head -n 1 | grep "^Python" || true)
  echo "setup.sh: TensorFlow 2.21 needs Python 3.10-3.13, and $py is ${found:-not a Python it can run}; $hint" >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"

req="$top/requirements.txt"
case "$(uname -m)" in
  x86_64|amd64) ;;
  *) # tensorflow-cpu ships x86_64 wheels only; elsewhere plain tensorflow is the CPU build.
     tmp=$(mktemp); sed 's/^tensorflow-cpu==/tensorflow==/' "$req" > "$tmp"; req=$tmp ;;
esac

stamp="$venv/.installed"
want=$(cat "$req"; [ $want_test = 1 ] && cat "$top/requirements-test.txt" "$top/requirements-gcs.txt" "$top/requirements-hf.txt"
       [ $want_gcs = 1 ] && cat "$top/requirements-gcs.txt"
       [ $want_hf = 1 ] && cat "$top/requirements-hf.txt"; true)
# The stamp lists every requirement line installed so far (a later plain ./setup.sh
# does not forget what --test or --gcs installed): nothing to do when it holds them all.
want=$(printf '%s\n' "$want" | grep -v '^[[:space:]]*\(#\|-r\|$\)' | sort -u)
if [ -f "$stamp" ] && [ -z "$(printf '%s\n' "$want" | grep -vxF -f "$stamp")" ]; then
  exit 0
fi
args=(-r "$req")
# The tests drive ./download.sh hf too, so --test brings the Hugging Face client as well.
[ $want_test = 1 ] && args+=(-r "$top/requirements-test.txt" -r "$top/requirements-hf.txt")
[ $want_gcs = 1 ] && args+=(-r "$top/requirements-gcs.txt")
[ $want_hf = 1 ] && args+=(-r "$top/requirements-hf.txt")
echo "setup.sh: installing into $venv ..." >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
# Lines of packages named now replace their older pins; the rest are kept.
names=$(printf '%s\n' "$want" | sed 's/[=<>!~ ].*//' | sort -u)
{ printf '%s\n' "$want"
  if [ -f "$stamp" ]; then
    awk -v names="$names" 'BEGIN { n = split(names, a, "\n"); for (i = 1; i <= n; i++) skip[a[i]] = 1 }
      /^[[:space:]]*(#|-r|$)/ { next }
      { name = $0; sub(/[=<>!~ ].*/, "", name); if (!(name in skip)) print }' "$stamp"
  fi
} | sort -u > "$stamp.new"
mv "$stamp.new" "$stamp"
