"""The data files shipped in slim/datasets/ (the 1000 synsets, the 50,000 validation
labels, the class texts), found relative to the checkout, and reading them as UTF-8."""

import os

from ilsvrc.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(REPO, "slim", "datasets")
SYNSETS_FILE = os.path.join(DATA_DIR, "imagenet_lsvrc_2015_synsets.txt")
VAL_LABELS_FILE = os.path.join(DATA_DIR, "imagenet_2012_validation_synset_labels.txt")
METADATA_FILE = os.path.join(DATA_DIR, "imagenet_metadata.txt")


def read_lines(path, what="file"):
    """Lines of a UTF-8 text file (CR/LF tolerant, no trailing empty line)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8").splitlines()
    except OSError as err:
        raise UserError("cannot read %s %s: %s" % (what, path, err.strerror or err))
    except UnicodeDecodeError as err:
        raise UserError("%s %s is not UTF-8 text (%s)" % (what, path, err.reason))
