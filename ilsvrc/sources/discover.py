"""Finding the images under a directory: release tars, extracted tree, Kaggle copy.

Shared by every format.  `find_source(dir, kind)` says what is there;
`list_source(found, runner)` returns the (train, validation) listings, validation
flat (one listing of `ILSVRC2012_val_*.JPEG`, group '').
"""

import os
from concurrent.futures import ThreadPoolExecutor

from ilsvrc import storage
from ilsvrc.sources import kagglezip, tarindex, tree
from ilsvrc.errors import UserError
from ilsvrc.sources.listing import Listing
from ilsvrc.sources import remote
from ilsvrc.sources import cached

SOURCES = ("auto", "tar", "tree", "kaggle", "zip")


def find_source(raw_dir, kind="auto"):
    """Where the images are: (kind, path, path).

    kinds: "tar" (train_tar, val_tar), "tree" (train_dir, val_dir), "kaggle" (the
    unpacked Kaggle train and val dirs), "zip" (the Kaggle zip, twice).  "auto" takes
    the first that is present, in that order.
    """
    if storage.is_remote(raw_dir):
        if kind not in ("auto", "tar"):
            raise UserError("a gs:// source holds the release tars: --source %s is for "
                            "local directories" % kind)
        return ("tar",) + tuple(remote.find_tars(raw_dir, (tarindex.TRAIN_TAR,
                                                             tarindex.VAL_TAR)))
    if not os.path.isdir(raw_dir):
        raise UserError("%s is not a directory" % raw_dir)
    tars = (os.path.join(raw_dir, tarindex.TRAIN_TAR), os.path.join(raw_dir, tarindex.VAL_TAR))
    tree = (os.path.join(raw_dir, "train"), os.path.join(raw_dir, "validation"))
    have_tars = [os.path.isfile(p) for p in tars]
    have_tree = [os.path.isdir(p) for p in tree]
    if kind == "tar" or (kind == "auto" and any(have_tars)):
        missing = [p for p, ok in zip(tars, have_tars) if not ok]
        if missing:
            raise UserError("missing %s. Put both ILSVRC2012 tars in %s."
                            % (" and ".join(missing), raw_dir))
        return ("tar",) + tars
    if kind == "tree" or (kind == "auto" and any(have_tree)):
        missing = [p for p, ok in zip(tree, have_tree) if not ok]
        if missing:
            raise UserError("missing directory %s (expected train/<synset>/*.JPEG and "
                            "validation/*.JPEG under %s)." % (" and ".join(missing), raw_dir))
        return ("tree",) + tree
    kaggle_tree = kagglezip.find_tree(raw_dir)
    if kind == "kaggle" or (kind == "auto" and kaggle_tree):
        if not kaggle_tree or not all(os.path.isdir(p) for p in kaggle_tree):
            raise UserError("no Kaggle tree in %s: expected %s/{train,val}/"
                            % (raw_dir, os.path.join(raw_dir, *kagglezip.CLS_LOC)))
        return ("kaggle",) + kaggle_tree
    archive = kagglezip.find_zip(raw_dir)
    if kind == "zip" or (kind == "auto" and archive):
        if not archive:
            raise UserError("missing %s" % os.path.join(raw_dir, kagglezip.ZIP_NAME))
        return ("zip", archive, archive)
    raise UserError("no ImageNet data in %s: expected the tars %s and %s, or the extracted "
                    "directories %s/ and %s/, or the Kaggle copy (%s/ or %s)."
                    % ((raw_dir,) + tars + tree
                       + (os.path.join(raw_dir, *kagglezip.CLS_LOC), kagglezip.ZIP_NAME)))


def list_source(found, runner, use_index=True):
    kind, train_path, val_path = found
    if kind == "tar" and use_index and storage.is_remote(train_path):
        return cached.cached_listings(
            [train_path, val_path], lambda: list_source(("tar", train_path, val_path),
                                                        runner, use_index=False))
    if kind == "tar":
        # the validation tar's headers are read on a thread of this process while the
        # workers index the training tar: both wait mostly on the disk
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-val") as ex:
            val = ex.submit(tarindex.index_flat_tar, val_path)
            train = tarindex.index_train_tar(train_path, runner)
            return train, val.result()
    if kind == "zip":
        return kagglezip.index_zip(train_path)
    return tree.list_tree_train(train_path), tree.list_tree_flat(val_path)
