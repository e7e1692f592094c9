#!/usr/bin/env bash
# slim/download_and_convert_imagenet.sh DIR [options]  --  see --help
# Builds TF-slim's ImageNet TFRecords in DIR from the ILSVRC2012 tars and the bounding
# box archive already in DIR (read in place; nothing is downloaded, nothing is asked).
set -euo pipefail
exec "$(dirname "$(readlink -f "$0")")/../ilsvrc/run_module.sh" download_and_convert_imagenet.sh ilsvrc.cli.slim convert "$@"
