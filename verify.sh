#!/usr/bin/env bash
# ./verify.sh FORMAT OUT_DIR [--source DIR] [-j N]  --  see ./verify.sh --help
# Re-reads every shard of a finished conversion (FORMAT: official or slim) and checks
# names, record CRCs, features, labels and counts; with --source DIR also that every
# image of the source is there exactly once with its label.  Exit status 0 = all good.
exec "$(dirname "$(readlink -f "$0")")/ilsvrc/run_module.sh" verify.sh ilsvrc.cli.verify "$@"
