#!/usr/bin/env bash
# ./download.sh hf DIR [--splits LIST] [--revision REV]   -- see ./download.sh --help
# ./download.sh kaggle DIR
# Gets a copy of ILSVRC2012: from the gated Hugging Face dataset ILSVRC/imagenet-1k
# (ilsvrc/cli/download.py, through the official huggingface_hub client), or from Kaggle
# (metalhead/download.sh, unchanged).  Credentials come from the environment or the
# clients' own stores, never from arguments.  docs/sources.md has the details.
set -euo pipefail
top=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
usage="usage: ./download.sh hf DIR [--splits train,validation] [--revision REV]
       ./download.sh kaggle DIR
  hf      the Hugging Face copy (ILSVRC/imagenet-1k): token from HF_TOKEN or
          'hf auth login'; ./download.sh hf --help for every option
  kaggle  the Kaggle copy (imagenet-object-localization-challenge), through
          metalhead/download.sh; ./download.sh kaggle --help for its usage
  -h, --help  this text
Either download, stopped half-way, goes on when started again. docs/sources.md
compares the copies."
case "${1:-}" in
  hf)
    shift
    # The checkout's virtualenv (./setup.sh --hf installs the client there), else python3.
    if [ -x "$top/.venv/bin/python" ]; then py="$top/.venv/bin/python"; else py=python3; fi
    export PYTHONPATH="$top${PYTHONPATH:+:$PYTHONPATH}"
    exec "$py" -m ilsvrc.cli.download "$@" ;;
  kaggle)
    shift
    exec "$top/metalhead/download.sh" "$@" ;;
  -h|--help)
    echo "$usage"; exit 0 ;;
  "")
    echo "$usage" >&2; exit 2 ;;
  *)
    echo "download.sh: error: unknown source '$1': give hf or kaggle (try --help)" >&2; exit 2 ;;
esac
