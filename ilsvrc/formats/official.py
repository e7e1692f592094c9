"""Format (a): TFRecords for the TF official ResNet, as tensorflow/tpu imagenet_to_gcs.py
writes them: 1024 training + 128 validation shards, 9 features.

Inputs are the `discover.Source` under one directory (the release tars, the
extracted layout, or the Kaggle copy), read once: discover, listings (cached.py:
the index file when valid, else walked), then the validation labels.
Validation labels: `--labels`, else `<dir>/synset_labels.txt` when present, else the
Kaggle copy's own LOC_val_solution.csv, else the shipped 50,000-line file
(val_labels.choose).
"""

import os
import sys
from array import array
from typing import NamedTuple

from ilsvrc import contract, plan, storage
from ilsvrc.errors import UserError
from ilsvrc.formats import conversion, extract, report
from ilsvrc.readerfiles import tfds_meta
from ilsvrc.records import features, image
from ilsvrc.sources import cached, discover, val_labels
from ilsvrc.write import driver

B, I = features.BYTES, features.INT64
TRAIN_SHARDS, VAL_SHARDS = 1024, 128
TRAIN_SEED = 0
SCHEMA = {
    "image/height": I, "image/width": I, "image/colorspace": B, "image/channels": I,
    "image/class/label": I, "image/class/synset": B, "image/format": B,
    "image/filename": B, "image/encoded": B,
}
LABEL_FILE_NAME = val_labels.LOCAL_NAME


class PlanOptions(NamedTuple):
    """What the planner of FORMAT takes besides the listings."""
    label_lines: list     # validation label lines (plan.validation_synsets)
    label_file: str       # where they are from (named in errors and the log)
    allow_custom: bool = False   # synsets outside the 1000 of ILSVRC2012 allowed

    def as_kwargs(self):
        """The keyword arguments of plan_listings (and conversion.convert)."""
        return self._asdict()


class SourceRead(NamedTuple):
    """A source read for planning: its (train, validation) listings and the options."""
    listings: tuple
    options: PlanOptions


def _reencoded_first(train_order, reencoded, ranges):
    """The training shards that hold the images re-encoded with TensorFlow's kernels
    (`reencoded`: their listing indices), to be written first and together, so that
    one worker loads the kernels (~0.2 s of CPU): only where shards are small enough
    to travel together (driver.BATCH_IMAGES); larger ones each travel alone."""
    if not reencoded or ranges[0][1] - ranges[0][0] >= driver.BATCH_IMAGES:
        return frozenset()
    wanted = set(reencoded)
    return plan.shards_of(ranges, [j for j, i in enumerate(train_order) if i in wanted])


def _class_features(labels):
    """synset -> the features of its images: one dict per class, shared by its
    images (read only, like every image of the plan): built once, and pickled once
    per job to the workers."""
    shared = {}

    def class_features(synset):
        feats = shared.get(synset)
        if feats is None:
            feats = shared[synset] = {"image/class/label": (I, [labels[synset]]),
                                      "image/class/synset": (B, [synset.encode("utf-8")])}
        return feats
    return class_features


def make_splits(train, val, label_lines, label_file, out_dir, allow_custom=False,
                log=None):
    """Plan both splits: training sorted by relpath then shuffled with seed 0,
    validation sorted by name; ceil(n / shards) images per shard.  Pure apart from
    reading the listings."""
    for listing, where in ((train, "training"), (val, "validation")):
        if not len(listing):
            raise UserError("found no %s images (*.JPEG) in %s"
                            % (where, contract.listing_where(listing)))
    contract.check_classes(train, allow_custom)
    # training: sorted listing, then upstream's seed-0 shuffle
    keys = [train.relpath(i) for i in range(len(train))]
    by_path = sorted(range(len(train)), key=keys.__getitem__)
    reencoded = plan.find_sorted(keys, by_path, image.reencoded_relpaths())
    del keys
    train_order = array("I", plan.apply_order(by_path,
                                              plan.seeded_permutation(len(train), TRAIN_SEED)))
    del by_path
    train_ranges = plan.ceil_shards(len(train), TRAIN_SHARDS)
    # validation: sorted, not shuffled; labels by number or position
    val_order = array("I", sorted(range(len(val)), key=val.names.__getitem__))
    contract.check_numbering(val.names, contract.listing_where(val))
    try:
        val_synsets = plan.validation_synsets([val.names[i] for i in val_order],
                                              label_lines, label_file)
    except ValueError as err:
        raise UserError(str(err))
    labels = plan.labels_from_synsets([s for s in label_lines if s] + train.group_names)
    note = contract.label_range_note(labels, allow_custom)
    if note and log is not None:
        log.write(note + "\n")

    class_features = _class_features(labels)

    def train_item(j):
        i = train_order[j]
        return plan.PlannedImage(*train.locate(i), train.relpath(i),
                                 class_features(train.group_of(i)))

    def val_item(j):
        i = val_order[j]
        return plan.PlannedImage(*val.locate(i), val.names[i],
                                 class_features(val_synsets[j]))

    def where(sub):   # a bucket gets upstream's flat layout (A12): prefix/train-...
        return out_dir if storage.is_remote(out_dir) else os.path.join(out_dir, sub)

    return [
        plan.Split("train", where("train"), train_ranges, train_item, len(train),
                   first=_reencoded_first(train_order, reencoded, train_ranges)),
        plan.Split("validation", where("validation"),
                   plan.ceil_shards(len(val), VAL_SHARDS), val_item, len(val)),
    ], len(labels)


def read_source(source, runner, label_file=None, log=None, allow_custom=False,
                index_file=None, cache_dir=None, listings=None, fill=True):
    """A SourceRead of `source` (a discover.Source): its (train, validation) listings
    (`listings` when already read, else cached.listings: from index_file when it
    exists) and the planner's options (the validation labels: label_file, else what
    val_labels.choose finds, checked against the contract; whether synsets outside
    the 1000 are allowed)."""
    if log:
        log.write(READING % (source.root, source.kind))
    if listings is None:
        listings = cached.listings(source, runner, index_file, cache_dir, log, fill)
    train, val = listings
    labels = val_labels.choose(source, label_file, LABEL_FILE_NAME, allow_custom,
                               val.side_files, cache_dir)
    val_labels.check_claims(val, labels)
    if log:
        log.write(LABELS_FROM % labels.path)
    report.note(source=source, labels=labels.path)
    options = PlanOptions(labels.lines_for(sorted(val.names)), labels.path, allow_custom)
    return SourceRead((train, val), options)


def extract_source(source, runner, label_file=None, log=sys.stderr, allow_custom=False):
    """build.sh --extract: unpack the release tars of `source` into
    DIR/train/<synset>/ and DIR/validation/ (the label file copied to
    DIR/synset_labels.txt); their listings, for the conversion to reuse."""
    listings, options = read_source(source, runner, label_file,
                                    allow_custom=allow_custom)
    n = extract.extract(*listings, source.root, options.label_file, runner)
    log.write("extracted %d files into %s/train and %s/validation\n"
              % (n, source.root, source.root))
    return listings


READING, LABELS_FROM = "reading %s (%s)\n", "validation labels from %s\n"


def plan_listings(listings, out_dir, log=None, label_lines=(), label_file="",
                  allow_custom=False):
    """The planner of FORMAT: make_splits over both listings, said on `log`."""
    splits, num_labels = make_splits(*listings, label_lines, label_file, out_dir,
                                     allow_custom, log)
    if log:
        log.write("%d training and %d validation images -> %s\n"
                  % (splits[0].count, splits[1].count, out_dir))
    return splits, num_labels


FORMAT = conversion.Format("official", SCHEMA,
                           (("train", "train", TRAIN_SHARDS),
                            ("validation", "validation", VAL_SHARDS)),
                           plan_listings)


def convert(raw_dir, out_dir, runner, check="header", source="auto", do_verify=True,
            label_file=None, log=sys.stderr, allow_custom=False, task=None,
            index_file=None, dali_index=False, tfds_metadata=False, cache_dir=None,
            listings=None):
    """The whole official conversion on worker pool `runner`; returns (splits, stats).
    raw_dir: a discover.Source, or a directory to find one of kind `source` in;
    task: a tasks.Task (write only its share); index_file, cache_dir, listings: see
    read_source; dali_index / tfds_metadata: also write DALI index files / TFDS
    metadata (local outputs only)."""
    conversion.refuse_remote_extras(out_dir, dali_index, tfds_metadata)
    found = discover.as_source(raw_dir, source)
    listings, options = read_source(found, runner, label_file, log, allow_custom,
                                    index_file, cache_dir, listings, task is None)
    splits, stats = conversion.convert(FORMAT, listings, out_dir, runner, check,
                                       do_verify, log, task=task, dali_index=dali_index,
                                       **options.as_kwargs())
    if tfds_metadata:
        write_tfds_metadata(out_dir, splits, listings, options, log)
    return splits, stats


def write_tfds_metadata(out_dir, splits, listings, options, log):
    """TFDS metadata for the splits planned from `listings` with read_source's
    PlanOptions (class names in label order)."""
    labels = plan.labels_from_synsets(list(options.label_lines)
                                      + listings[0].group_names)
    tfds_meta.write(out_dir, FORMAT.name, splits, SCHEMA, sorted(labels, key=labels.get),
                    log)


def plan_from_source(source, out_dir, runner, label_file, num_threads=None,
                     allow_custom=False, index_file=None):
    """The splits build.sh would write from `source` (a directory or a Source; the
    same label file rule): ./verify.sh --source's re-planner (num_threads: unused)."""
    listings, options = read_source(discover.as_source(source), runner, label_file,
                                    allow_custom=allow_custom, index_file=index_file)
    return plan_listings(listings, out_dir, **options.as_kwargs())[0]
