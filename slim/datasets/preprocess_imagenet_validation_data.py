#!/usr/bin/env python3
"""Sort the flat ILSVRC2012 validation images into one folder per synset (Python 3 port).

Moves VALIDATION_DIR/ILSVRC2012_val_%08d.JPEG number k into VALIDATION_DIR/<synset>/,
the synset being line k of LABELS_FILE (the shipped
imagenet_2012_validation_synset_labels.txt), which is the layout build_imagenet_data.py
reads.  Unlike upstream it can be run again: images already in their folder are left
there, so a second run, or a run after an interruption, completes.  Every image is
looked for before anything is moved.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("preprocess_imagenet_validation_data.py")

from ilsvrc.formats import extract  # noqa: E402
from ilsvrc.cli import options  # noqa: E402
from ilsvrc.errors import UserError, main_guard, report  # noqa: E402

PROG = "preprocess_imagenet_validation_data.py"
USAGE = "usage: %s VALIDATION_DIR LABELS_FILE\n" % PROG


def run(args):
    status = options.positional(args, USAGE, __doc__, 2, None)
    if status is not None:  # extra arguments are ignored, as upstream
        return status
    val_dir, label_file = args[:2]
    if not os.path.isdir(val_dir):
        raise UserError("%s is not a directory; extract ILSVRC2012_img_val.tar into it "
                        "first" % val_dir)
    try:
        moved, missing = extract.sort_validation(val_dir, label_file)
    except extract.MissingImage as err:
        report(err, PROG)
        return 255  # upstream's status for a missing image
    sys.stderr.write("%s: moved %d images into their synset folders%s\n" % (
        val_dir, moved, "; a partial validation set: %d images of %s are not there "
        "(e.g. %s; nothing to move for them)" % (len(missing), label_file, missing[0])
        if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(lambda: run(sys.argv[1:]), PROG))
