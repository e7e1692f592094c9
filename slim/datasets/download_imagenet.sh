#!/usr/bin/env bash
# slim/datasets/download_imagenet.sh [OUTDIR [SYNSETS_FILE]] [--tars DIR]  --  see --help
# Unpacks the ILSVRC2012 tars (by default from the parent of OUTDIR, as upstream) into
# OUTDIR/train/<synset>/ and OUTDIR/validation/<synset>/. Nothing is downloaded: the
# image-net.org URLs upstream used are dead, and nothing is asked.
set -euo pipefail
exec "$(dirname "$(readlink -f "$0")")/../../ilsvrc/run_module.sh" download_imagenet.sh ilsvrc.cli.slim extract "$@"
