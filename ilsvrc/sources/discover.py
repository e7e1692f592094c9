"""What a source directory holds (release tars, extracted tree, Kaggle copy), as a
`Source`, and walking it into its (train, validation) listings.

Shared by every format.  `find_source(dir, kind)` says what is there;
`list_source(source, runner)` walks it (every time: reading an index file instead
is ilsvrc/sources/cached.py's policy) and returns the (train, validation)
listings, validation flat (one listing of `ILSVRC2012_val_*.JPEG`, group '').
"""

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from ilsvrc import storage
from ilsvrc.errors import UserError
from ilsvrc.sources import hfcopy, kagglezip, parts, remote, tarindex, tree

SOURCES = ("auto", "tar", "tree", "kaggle", "zip") + hfcopy.KINDS


class Source(NamedTuple):
    """Where the images of one source are.

    kind: "tar" (train, val: the release tars), "tree" (the extracted train and
    validation directories), "kaggle" (the unpacked Kaggle train and val
    directories), "zip" (the Kaggle zip, as both train and val), "parquet" or
    "hf-tar" (the Hugging Face copy: train and val are the folder holding its
    files, sources/hfcopy.py); root: the directory given (or the gs:// prefix)."""
    kind: str
    train: str
    val: str
    root: str

    @property
    def remote(self):
        """True for release tars in a bucket."""
        return storage.is_remote(self.train)


def find_source(raw_dir, kind="auto"):
    """The Source under raw_dir: "auto" takes the first kind present, in the order
    tar, tree, kaggle, zip; another kind must be there."""
    hf = _find_hf(raw_dir, kind)
    if hf is not None:
        return hf
    if storage.is_remote(raw_dir):
        if kind not in ("auto", "tar"):
            raise UserError("a gs:// source holds the release tars: --source %s is for "
                            "local directories" % kind)
        train, val = remote.find_tars(raw_dir, (tarindex.TRAIN_TAR, tarindex.VAL_TAR))
        return Source("tar", train, val, raw_dir)
    found = _find_local(raw_dir, kind)
    return Source(*found, raw_dir)


def _find_hf(raw_dir, kind):
    """The Source of a Hugging Face copy in raw_dir: always when `kind` names one
    (refused when absent), with "auto" when nothing of the release's own layouts is
    there."""
    if kind not in hfcopy.KINDS and kind != "auto":
        return None
    if storage.is_remote(raw_dir):
        storage.check_bucket(raw_dir, "reading")
    if kind == "auto" and _has_release_layout(raw_dir):
        return None
    found = hfcopy.find(raw_dir, kind)
    if found is None:
        if kind == "auto":
            return None
        raise UserError("no Hugging Face copy (%s) in %s: expected %s" % (
            kind, raw_dir, "data/train-NNNNN-of-NNNNN.parquet files" if kind == "parquet"
            else "data/train_images_0.tar.gz ... data/val_images.tar.gz"))
    folder = hfcopy.data_dir(raw_dir)
    return Source(found[0], folder, folder, raw_dir)


def _has_release_layout(raw_dir):
    """True when raw_dir holds (part of) a layout that "auto" looks for first."""
    if storage.is_remote(raw_dir):
        store = storage.store_for(raw_dir)
        return any(store.stat(storage.join(raw_dir, n)) is not None
                   for n in (tarindex.TRAIN_TAR, tarindex.VAL_TAR))
    if any(parts.present(os.path.join(raw_dir, n))       # whole or split
           for n in (tarindex.TRAIN_TAR, tarindex.VAL_TAR)):
        return True
    names = ("train", "validation", kagglezip.ZIP_NAME, kagglezip.CLS_LOC[0])
    return any(os.path.exists(os.path.join(raw_dir, n)) for n in names)


def as_source(where, kind="auto"):
    """`where` itself when it is a Source already found, else find_source(where, kind):
    a front end finds its source once and passes it down."""
    return where if isinstance(where, Source) else find_source(where, kind)


def _find_local(raw_dir, kind):
    """(kind, train, val) of a local directory (see find_source)."""
    if not os.path.isdir(raw_dir):
        raise UserError("%s is not a directory" % raw_dir)
    tars = (os.path.join(raw_dir, tarindex.TRAIN_TAR), os.path.join(raw_dir, tarindex.VAL_TAR))
    tree = (os.path.join(raw_dir, "train"), os.path.join(raw_dir, "validation"))
    # a tar may be one file or its parts (NAME.001, ...; parts.py), read in place
    have_tars = [parts.present(p) if kind in ("auto", "tar") else os.path.isfile(p)
                 for p in tars]
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
        return "zip", archive, archive
    raise UserError("no ImageNet data in %s: expected the tars %s and %s, or the extracted "
                    "directories %s/ and %s/, or the Kaggle copy (%s/ or %s), or the "
                    "Hugging Face copy (data/*.parquet or data/*.tar.gz)."
                    % ((raw_dir,) + tars + tree
                       + (os.path.join(raw_dir, *kagglezip.CLS_LOC), kagglezip.ZIP_NAME)))


def list_source(source, runner):
    """The (train, validation) listings of `source`, walked."""
    if source.kind == "tar":
        # the validation tar's headers are read on a thread of this process while the
        # workers index the training tar: both wait mostly on the disk
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-val") as ex:
            val = ex.submit(tarindex.index_flat_tar, source.val)
            train = tarindex.index_train_tar(source.train, runner)
            return train, val.result()
    if source.kind == "zip":
        return kagglezip.index_zip(source.train)
    return tree.list_tree_train(source.train), tree.list_tree_flat(source.val)
