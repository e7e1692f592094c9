"""Listing extracted trees: `train/<synset>/*.JPEG` and flat `validation/*.JPEG`."""

import fnmatch
import os

from ilsvrc.errors import UserError
from ilsvrc.listing import IMAGE_PATTERN, Listing


def _jpegs_in(directory):
    """Names in `directory` matching *.JPEG (dot-files included, like tf glob)."""
    try:
        entries = list(os.scandir(directory))
    except OSError as err:
        raise UserError("cannot list %s: %s" % (directory, err.strerror))
    return [e.name for e in entries
            if fnmatch.fnmatchcase(e.name, IMAGE_PATTERN) and e.is_file()]


def list_tree_train(train_dir):
    """`train/*/*.JPEG`: one level of class directories, any name."""
    listing = Listing("train")
    listing.root = train_dir
    try:
        subdirs = [e.name for e in os.scandir(train_dir) if e.is_dir()]
    except OSError as err:
        raise UserError("cannot list %s: %s" % (train_dir, err.strerror))
    for group in subdirs:
        for name in _jpegs_in(os.path.join(train_dir, group)):
            listing.add(name, group)
    return listing


def list_tree_flat(directory):
    """`validation/*.JPEG`: a flat directory of images."""
    listing = Listing("validation")
    listing.root = directory
    for name in _jpegs_in(directory):
        listing.add(name, "")
    return listing
