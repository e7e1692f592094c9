#!/usr/bin/env bash
# slim/download_and_convert_imagenet.sh DIR [options]  --  see --help
# Builds TF-slim's ImageNet TFRecords in DIR from the ILSVRC2012 tars and the bounding
# box archive already in DIR (read in place; nothing is downloaded, nothing is asked).
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/datasets/find_python.sh"
exec "$py" -m ilsvrc.cli_slim convert "$@"
