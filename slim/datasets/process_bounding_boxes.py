#!/usr/bin/env python3
"""Turn the ILSVRC2012 bounding box annotations into TF-slim's CSV (Python 3 port).

  process_bounding_boxes.py ANNOTATIONS [SYNSETS_FILE] > boxes.csv

ANNOTATIONS is the directory of the extracted ILSVRC2012_bbox_train_v2.tar.gz
(<synset>/<image>.xml) or the archive itself, read without extracting it.  With
SYNSETS_FILE only annotations of those synsets are used, and a file whose first
object names another of those synsets is dropped.  One line per box on stdout,
`<image>.JPEG,xmin,ymin,xmax,ymax` in relative coordinates; counts on stderr.
Output is in annotation order; pipe it through `LC_ALL=C sort` for the file
build_imagenet_data.py reads (download_and_convert_imagenet.sh writes it sorted).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("process_bounding_boxes.py")

from ilsvrc import contract  # noqa: E402
from ilsvrc.formats import bbox  # noqa: E402
from ilsvrc.cli import options  # noqa: E402
from ilsvrc.errors import main_guard  # noqa: E402

PROG = "process_bounding_boxes.py"
USAGE = "usage: %s ANNOTATIONS [SYNSETS_FILE]\n" % PROG


def run(args):
    status = options.positional(args, USAGE, __doc__, 1, 2)
    if status is not None:
        return status
    synsets = None
    if len(args) == 2:
        synsets = set(contract.read_synset_file(args[1], "synsets file", known=None))
        sys.stderr.write("%d synsets in %s\n" % (len(synsets), args[1]))
    try:
        for line in bbox.csv_lines(args[0], synsets):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: the reader chose to stop
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(lambda: run(sys.argv[1:]), PROG))
