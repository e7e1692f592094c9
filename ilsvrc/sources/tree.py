"""Listing extracted trees: `train/<synset>/*.JPEG` and flat `validation/*.JPEG`.

Class directories must be synsets; sub-folders and image files that the `*.JPEG`
globs would leave out are refused, not skipped (ilsvrc.contract)."""

import fnmatch
import os

from ilsvrc import contract
from ilsvrc.errors import UserError
from ilsvrc.sources.listing import IMAGE_PATTERN, Listing


def _entries(directory):
    try:
        return list(os.scandir(directory))
    except OSError as err:
        raise UserError("cannot list %s: %s" % (directory, err.strerror))


def _jpegs_in(directory):
    """Names in `directory` matching *.JPEG (dot-files included, like tf glob).
    Sub-folders and other image-like files are refused (they would be left out)."""
    names = []
    for e in _entries(directory):
        if e.is_dir():
            raise UserError("%s/ is a sub-folder where only *.JPEG images belong; its "
                            "images would be left out. Move them up (or remove it), then "
                            "rerun." % os.path.join(directory, e.name))
        if fnmatch.fnmatchcase(e.name, IMAGE_PATTERN) and e.is_file():
            names.append(e.name)
        elif contract.IMAGE_LIKE.fullmatch(e.name):
            raise UserError("%s is not named *.JPEG, so it would be left out; rename it "
                            "to .JPEG (or remove it), then rerun."
                            % os.path.join(directory, e.name))
    return names


def list_tree_train(train_dir):
    """`train/*/*.JPEG`: one level of class directories, any name."""
    listing = Listing("train")
    listing.root = train_dir
    subdirs = []
    for e in _entries(train_dir):
        if e.is_dir():
            contract.check_class_name(e.name, os.path.join(train_dir, e.name) + "/")
            subdirs.append(e.name)
        elif contract.IMAGE_LIKE.fullmatch(e.name):
            raise UserError("%s is outside any class directory (<synset>/), so it would "
                            "be left out. Move it into its class directory (a flat "
                            "validation directory: run preprocess_imagenet_validation_data.py"
                            " first), then rerun." % os.path.join(train_dir, e.name))
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
