"""Format (a): TFRecords for the TF official ResNet, as tensorflow/tpu imagenet_to_gcs.py
writes them (spec §2): 1024 training + 128 validation shards, 9 features.

Inputs, found under one directory (`find_source`):
  * the release tars `ILSVRC2012_img_train.tar` + `ILSVRC2012_img_val.tar`, read in place;
  * the extracted layout `train/<synset>/*.JPEG`, `validation/*.JPEG`;
  * the Kaggle copy, unpacked (`ILSVRC/Data/CLS-LOC/{train,val}`) or as its zip.
Validation labels: `<dir>/synset_labels.txt` when present, else the shipped 50,000-line
file.
"""

import os
import sys
from array import array

from ilsvrc import data, example, kaggle, plan, sources, verify, write
from ilsvrc.errors import UserError

B, I = example.BYTES, example.INT64
TRAIN_SHARDS, VAL_SHARDS = 1024, 128
TRAIN_SEED = 0
SCHEMA = {
    "image/height": I, "image/width": I, "image/colorspace": B, "image/channels": I,
    "image/class/label": I, "image/class/synset": B, "image/format": B,
    "image/filename": B, "image/encoded": B,
}
LABEL_FILE_NAME = "synset_labels.txt"
SOURCES = ("auto", "tar", "tree", "kaggle", "zip")


def find_source(raw_dir, kind="auto"):
    """Where the images are: (kind, path, path).

    kinds: "tar" (train_tar, val_tar), "tree" (train_dir, val_dir), "kaggle" (the
    unpacked Kaggle train and val dirs), "zip" (the Kaggle zip, twice).  "auto" takes
    the first that is present, in that order.
    """
    if not os.path.isdir(raw_dir):
        raise UserError("%s is not a directory" % raw_dir)
    tars = (os.path.join(raw_dir, sources.TRAIN_TAR), os.path.join(raw_dir, sources.VAL_TAR))
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
    kaggle_tree = kaggle.find_tree(raw_dir)
    if kind == "kaggle" or (kind == "auto" and kaggle_tree):
        if not kaggle_tree or not all(os.path.isdir(p) for p in kaggle_tree):
            raise UserError("no Kaggle tree in %s: expected %s/{train,val}/"
                            % (raw_dir, os.path.join(raw_dir, *kaggle.CLS_LOC)))
        return ("kaggle",) + kaggle_tree
    archive = kaggle.find_zip(raw_dir)
    if kind == "zip" or (kind == "auto" and archive):
        if not archive:
            raise UserError("missing %s" % os.path.join(raw_dir, kaggle.ZIP_NAME))
        return ("zip", archive, archive)
    raise UserError("no ImageNet data in %s: expected the tars %s and %s, or the extracted "
                    "directories %s/ and %s/, or the Kaggle copy (%s/ or %s)."
                    % ((raw_dir,) + tars + tree
                       + (os.path.join(raw_dir, *kaggle.CLS_LOC), kaggle.ZIP_NAME)))


def list_source(found, runner):
    kind, train_path, val_path = found
    if kind == "tar":
        return sources.index_train_tar(train_path, runner), sources.index_flat_tar(val_path)
    if kind == "zip":
        return kaggle.index_zip(train_path)
    return sources.list_tree_train(train_path), sources.list_tree_flat(val_path)


def label_file_for(raw_dir):
    local = os.path.join(raw_dir, LABEL_FILE_NAME)
    return local if os.path.isfile(local) else data.VAL_LABELS_FILE


def make_splits(train, val, label_lines, label_file, out_dir):
    """Plan both splits (spec §2.3-2.5).  Pure apart from reading the listings."""
    for listing, where in ((train, "training"), (val, "validation")):
        if not len(listing):
            raise UserError("found no %s images (*.JPEG) in the source" % where)
    # training: sorted listing, then upstream's seed-0 shuffle
    keys = [train.relpath(i) for i in range(len(train))]
    by_path = sorted(range(len(train)), key=keys.__getitem__)
    del keys
    train_order = array("I", plan.apply_order(by_path,
                                              plan.seeded_permutation(len(train), TRAIN_SEED)))
    del by_path
    # validation: sorted, not shuffled; labels by number or position
    val_order = array("I", sorted(range(len(val)), key=val.names.__getitem__))
    try:
        val_synsets = plan.validation_synsets([val.names[i] for i in val_order],
                                              label_lines, label_file)
    except ValueError as err:
        raise UserError(str(err))
    labels = plan.labels_from_synsets(list(label_lines) + train.group_names)

    def train_item(j):
        i = train_order[j]
        path, offset, size, where = train.locate(i)
        synset = train.group_of(i)
        return (path, offset, size, where, train.relpath(i),
                {"image/class/label": (I, [labels[synset]]),
                 "image/class/synset": (B, [synset.encode("utf-8")])})

    def val_item(j):
        i = val_order[j]
        path, offset, size, where = val.locate(i)
        synset = val_synsets[j]
        return (path, offset, size, where, val.names[i],
                {"image/class/label": (I, [labels[synset]]),
                 "image/class/synset": (B, [synset.encode("utf-8")])})

    return [
        write.Split("train", os.path.join(out_dir, "train"),
                    plan.ceil_shards(len(train), TRAIN_SHARDS), train_item, len(train)),
        write.Split("validation", os.path.join(out_dir, "validation"),
                    plan.ceil_shards(len(val), VAL_SHARDS), val_item, len(val)),
    ], len(labels)


def convert(raw_dir, out_dir, runner, check="header", source="auto", do_verify=True,
            label_file=None, log=sys.stderr):
    """The whole official conversion on worker pool `runner`; returns (splits, stats)."""
    found = find_source(raw_dir, source)
    label_file = label_file or label_file_for(raw_dir)
    label_lines = data.read_lines(label_file, "validation label file")
    log.write("reading %s (%s); validation labels from %s\n" % (raw_dir, found[0], label_file))
    train, val = list_source(found, runner)
    splits, num_labels = make_splits(train, val, label_lines, label_file, out_dir)
    log.write("%d training and %d validation images -> %s\n"
              % (splits[0].count, splits[1].count, out_dir))
    stats = write.write_splits(splits, runner, check, label="converting")
    if do_verify:
        counts = verify.verify_splits(splits, SCHEMA, (1, num_labels), runner)
        log.write("verified: %d training and %d validation records, every image once "
                  "with its label\n" % (counts["train"], counts["validation"]))
    return splits, stats
