#!/usr/bin/env bash
# ./build.sh /path-to-tar-files [options]   --  see ./build.sh --help
# Converts the ILSVRC2012 tars into TF official ResNet TFRecords under
# /path-to-tar-files/tf_records/{train,validation}, reading the tars in place.
exec "$(dirname "$(readlink -f "$0")")/ilsvrc/run_module.sh" build.sh ilsvrc.cli.build "$@"
