"""Format (b): TF-slim's ImageNet TFRecords, as research/slim build_imagenet_data.py
writes them: validation then training shards, flat in one directory,
15 features with the human-readable class text and the bounding boxes.

Images come from the slim tree (`<train_dir>/<synset>/*.JPEG`,
`<validation_dir>/<synset>/*.JPEG`) or straight from the release tars; the flat
validation tar is grouped by synset with the 50,000-line label file, by the number
in each file name (what preprocess_imagenet_validation_data.py does on disk).
Labels are 1-based lines of the synsets file.  Each split is listed per synset in
synsets-file order, file names sorted (decision A2), then shuffled with seed 12345,
reseeded per split.  Shard boundaries follow upstream's thread layout, so
`num_threads` is a layout parameter here: the writing is done by the worker pool.
"""

import io
import os
import sys
from array import array
from typing import NamedTuple

from ilsvrc import contract, plan, shipped, storage
from ilsvrc.errors import UsageError, UserError
from ilsvrc.formats import conversion, report
from ilsvrc.readerfiles import tfds_meta
from ilsvrc.records import features, image
from ilsvrc.sources import cached, discover, tree, val_labels
from ilsvrc.write import driver

B, F, I = features.BYTES, features.FLOAT, features.INT64
TRAIN_SHARDS, VAL_SHARDS, NUM_THREADS = 1024, 128, 8
SEED = 12345
SCHEMA = {
    "image/height": I, "image/width": I, "image/colorspace": B, "image/channels": I,
    "image/class/label": I, "image/class/synset": B, "image/class/text": B,
    "image/object/bbox/xmin": F, "image/object/bbox/xmax": F,
    "image/object/bbox/ymin": F, "image/object/bbox/ymax": F,
    "image/object/bbox/label": I, "image/format": B, "image/filename": B,
    "image/encoded": B,
}


class PlanOptions(NamedTuple):
    """What the planner of FORMAT takes besides the listings."""
    synsets: list         # the labels file's synsets: label k + 1 is line k
    texts: dict           # {synset: human-readable text}
    boxes: dict           # {image file name: [(xmin, ymin, xmax, ymax), ...]}
    metadata_file: str    # where the texts are from (named in errors)
    train_shards: int
    val_shards: int
    num_threads: int      # upstream's thread layout of the shards
    allow_custom: bool = False

    def as_kwargs(self):
        """The keyword arguments of plan_listings (and conversion.convert)."""
        return self._asdict()


class SourceRead(NamedTuple):
    """A source read for planning: its (train, validation) listings and the options."""
    listings: tuple
    options: PlanOptions


def check_layout(train_shards, val_shards, num_threads):
    """Upstream's rules on shards and threads, as usage errors."""
    if num_threads < 1:
        raise UsageError("--num_threads must be at least 1")
    for flag, shards in (("--train_shards", train_shards),
                         ("--validation_shards", val_shards)):
        if shards < 1:
            raise UsageError("%s must be at least 1" % flag)
        if shards % num_threads:
            raise UsageError("%s=%d is not a multiple of --num_threads=%d: choose a "
                             "number of threads that divides both shard counts"
                             % (flag, shards, num_threads))


# --------------------------------------------------------------------------- lookups

def load_synsets(path, allow_custom=False):
    """Synsets in file order; label of line k (0-based) is k + 1.  Unless a custom
    class set is allowed, the file must be the 1000 ILSVRC2012 synsets, sorted."""
    synsets = contract.read_synset_file(path, "labels file", known=None)
    seen = {}
    for k, s in enumerate(synsets):
        if s in seen:
            raise UserError("%s lists %s twice (lines %d and %d); each synset must "
                            "appear once" % (path, s, seen[s] + 1, k + 1))
        seen[s] = k
    contract.check_slim_synsets(synsets, path, allow_custom)
    return synsets


def load_metadata(path):
    """{synset: human-readable text} from `synset<TAB>text` lines."""
    texts = {}
    for k, line in enumerate(shipped.read_lines(path, "metadata file")):
        parts = line.strip().split("\t")
        if len(parts) != 2:
            raise UserError("%s line %d: expected 'synset<TAB>text', got %r"
                            % (path, k + 1, line))
        texts[parts[0]] = parts[1]
    return texts


def load_boxes(path):
    """{image file name: [(xmin, ymin, xmax, ymax), ...]} in file order; {} for ''."""
    boxes = {}
    if not path:
        return boxes
    for k, line in enumerate(shipped.read_lines(path, "bounding box file")):
        parts = line.split(",")
        try:
            if len(parts) != 5:
                raise ValueError
            box = tuple(float(v) for v in parts[1:])
        except ValueError:
            raise UserError("%s line %d: expected 'image,xmin,ymin,xmax,ymax', got %r. "
                            "Regenerate it with process_bounding_boxes.py"
                            % (path, k + 1, line))
        boxes.setdefault(parts[0], []).append(box)
    return boxes


# --------------------------------------------------------------------------- sources

def by_synset(flat, labels):
    """A flat validation listing regrouped under each image's synset (`labels`: a
    kaggle_labels source)."""
    contract.check_numbering(flat.names, contract.listing_where(flat))
    order = sorted(range(len(flat)), key=flat.names.__getitem__)
    names = [flat.names[i] for i in order]
    label_lines = [s.strip() for s in labels.lines_for(names)]
    try:
        synsets = plan.validation_synsets(names, label_lines, labels.path)
    except ValueError as err:
        raise UserError(str(err))
    grouped = flat.like()
    grouped.files_flat = True   # the files stay where they are, grouped or not
    for i, synset in zip(order, synsets):
        grouped.add(flat.names[i], synset, flat.container[i], flat.offset[i], flat.size[i])
    return grouped


def source_listings(source, runner, val_label_file=None, allow_custom=False,
                    index_file=None, log=None, fill=True):
    """(train, validation) listings of the images of `source` (a discover.Source, or
    a directory to find one in), read in place: the release tars, or the Kaggle copy
    (tree or zip); from index_file when it exists (cached.py).  The flat validation
    set is grouped by synset with the label file, chosen by the rule both formats
    share (val_labels.choose: val_label_file, else DIR/synset_labels.txt, else the
    Kaggle copy's LOC_val_solution.csv, else the shipped file)."""
    source = discover.as_source(source)
    train, flat_val = cached.listings(source, runner, index_file, fill=fill)
    labels = val_labels.choose(source, val_label_file, val_labels.LOCAL_NAME,
                               allow_custom=allow_custom, side_files=flat_val.side_files)
    val_labels.check_claims(flat_val, labels)
    if log:
        log.write("validation labels from %s\n" % labels.path)
    report.note(source=source, labels=labels.path)
    return train, by_synset(flat_val, labels)


def tree_listings(train_dir, val_dir):
    """(train, validation) listings of the slim tree: `<dir>/<synset>/*.JPEG` each."""
    for d in (train_dir, val_dir):
        if not os.path.isdir(d):
            raise UserError("%s is not a directory (expected <synset>/*.JPEG inside)" % d)
    return tree.list_tree_train(train_dir), tree.list_tree_train(val_dir)


# --------------------------------------------------------------------------- plan

def listing_order(listing, synsets):
    """Indices in upstream's list order: synsets in file order, names sorted (A2)."""
    gid = {name: g for g, name in enumerate(listing.group_names)}
    members = {}
    for i in range(len(listing)):
        members.setdefault(listing.group[i], []).append(i)
    order = array("I")
    for synset in synsets:
        idx = members.get(gid.get(synset), [])
        idx.sort(key=listing.names.__getitem__)
        order.extend(idx)
    return order


def _features(synset, label, text, boxes):
    return {
        "image/class/label": (I, [label]),
        "image/class/synset": (B, [synset.encode("utf-8")]),
        "image/class/text": (B, [text.encode("utf-8")]),
        "image/object/bbox/xmin": (F, [b[0] for b in boxes]),
        "image/object/bbox/ymin": (F, [b[1] for b in boxes]),
        "image/object/bbox/xmax": (F, [b[2] for b in boxes]),
        "image/object/bbox/ymax": (F, [b[3] for b in boxes]),
        "image/object/bbox/label": (I, [label] * len(boxes)),
    }


def plan_split(prefix, listing, synsets, texts, boxes, out_dir, num_shards, num_threads,
               metadata_file="metadata file", log=sys.stderr):
    """A plan.Split for one split: upstream's list order, seed-12345 shuffle and
    thread-layout shards."""
    labels = {s: k + 1 for k, s in enumerate(synsets)}
    for g in sorted(set(listing.group_names)):
        if g not in labels:   # its images would be left out of the plan
            where = contract.class_where(listing, g)
            contract.check_class_name(g, where)
            raise UserError("%s: class %s is not in the labels file, so its images would "
                            "be left out. Add it to the labels file (a custom class set) "
                            "or remove it from the source." % (where, g))
    base = listing_order(listing, synsets)
    if not base:
        raise UserError("found no %s images: none of the synsets of the labels file has "
                        "a <synset>/*.JPEG in the source (is the validation directory "
                        "still flat? run preprocess_imagenet_validation_data.py)" % prefix)
    order = array("I", plan.apply_order(base, plan.seeded_permutation(len(base), SEED)))
    del base
    for g in sorted({listing.group[i] for i in order}):
        synset = listing.group_names[g]
        if synset not in texts:
            raise UserError("%s has no text for synset %s; add a '%s<TAB>text' line"
                            % (metadata_file, synset, synset))
    with_boxes = sum(1 for i in order if listing.names[i] in boxes)
    log.write("%s: found %d images with bboxes out of %d images\n"
              % (prefix, with_boxes, len(order)))

    def item(j):
        i = order[j]
        synset = listing.group_of(i)
        return plan.PlannedImage(*listing.locate(i), listing.relpath(i),
                                 _features(synset, labels[synset], texts[synset],
                                           boxes.get(listing.names[i], ())))

    ranges = plan.thread_shards(len(order), num_shards, num_threads)
    return plan.Split(prefix, out_dir, ranges, item, len(order),
                      first=_reencoded_first(listing, order, ranges))


def _reencoded_first(listing, order, ranges):
    """The shards that hold an image re-encoded with TensorFlow's kernels, to be
    written first and together, so that one worker loads the kernels (~0.2 s of
    CPU): only where shards are small enough to travel together
    (driver.BATCH_IMAGES); larger ones each travel alone."""
    if not ranges or max(end - start for start, end in ranges) >= driver.BATCH_IMAGES:
        return frozenset()
    return plan.shards_of(ranges, [j for j, i in enumerate(order)
                                   if image.special_kind(listing.relpath(i))])


def read_source(runner, train_dir=None, val_dir=None, source_dir=None,
                labels_file=shipped.SYNSETS_FILE, metadata_file=shipped.METADATA_FILE,
                bbox_file="", val_label_file=None, train_shards=TRAIN_SHARDS,
                val_shards=VAL_SHARDS, num_threads=NUM_THREADS, log=sys.stderr,
                allow_custom=False, index_file=None, fill=True):
    """The (train, validation) listings and the planner's options (the label, text
    and box tables, the layout, whether synsets outside the 1000 are allowed);
    index_file: see source_listings.

    Reads the images of source_dir (tars or Kaggle copy: a directory or a
    discover.Source) when given, else the trees train_dir and val_dir.  bbox_file ''
    means no boxes (empty box lists).  Returns a SourceRead.
    """
    check_layout(train_shards, val_shards, num_threads)
    synsets = load_synsets(labels_file, allow_custom)
    if allow_custom:
        log.write("custom class set: %d classes, labels 1..%d\n" % (len(synsets),
                                                                     len(synsets)))
    texts = load_metadata(metadata_file)
    boxes = load_boxes(bbox_file)
    log.write("%d bounding boxes for %d images in %s\n"
              % (sum(map(len, boxes.values())), len(boxes), bbox_file or "(no box file)"))
    if source_dir is not None:
        listings = source_listings(source_dir, runner, val_label_file,
                                   allow_custom=allow_custom, index_file=index_file,
                                   log=log, fill=fill)
    else:
        listings = tree_listings(train_dir, val_dir)
    return SourceRead(listings, PlanOptions(synsets, texts, boxes, metadata_file,
                                            train_shards, val_shards, num_threads,
                                            allow_custom))


def plan_listings(listings, out_dir, log, synsets, texts, boxes, metadata_file,
                  train_shards, val_shards, num_threads, allow_custom=False):
    """The planner of FORMAT: validation then training, as upstream writes them."""
    train, val = listings
    splits = [plan_split("validation", val, synsets, texts, boxes, out_dir, val_shards,
                         num_threads, metadata_file, log),
              plan_split("train", train, synsets, texts, boxes, out_dir, train_shards,
                         num_threads, metadata_file, log)]
    return splits, len(synsets)


FORMAT = conversion.Format("slim", SCHEMA,
                           (("", "train", TRAIN_SHARDS), ("", "validation", VAL_SHARDS)),
                           plan_listings, exact_labels=True)


def make_splits(out_dir, runner, log=sys.stderr, **where):
    """Plan both splits: (splits, number of labels); `where` as for read_source."""
    listings, options = read_source(runner, log=log, **where)
    return plan_listings(listings, out_dir, log, **options.as_kwargs())


def plan_from_source(source, out_dir, runner, label_file, num_threads=NUM_THREADS,
                     allow_custom=False, index_file=None):
    """The splits the slim driver would write from the tars or Kaggle copy in `source`
    (a directory or a Source): ./verify.sh --source's re-planner (boxes do not
    matter there: verify compares file names and labels)."""
    splits, _ = make_splits(out_dir, runner, source_dir=source, val_label_file=label_file,
                            num_threads=num_threads, log=io.StringIO(),
                            allow_custom=allow_custom, index_file=index_file)
    return splits


def convert(out_dir, runner, check="header", do_verify=True, log=sys.stderr, task=None,
            dali_index=False, tfds_metadata=False, **where):
    """The whole slim conversion; returns (splits, stats).  `where` and the layout
    options are those of read_source; task: a tasks.Task (write only its share);
    dali_index / tfds_metadata: also write DALI index files / TFDS metadata (local
    outputs only)."""
    conversion.refuse_remote_extras(out_dir, dali_index, tfds_metadata)
    if storage.is_remote(out_dir):
        storage.check_bucket(out_dir, "writing to")
    elif not os.path.isdir(out_dir):
        raise UserError("output directory %s does not exist; create it first (the slim "
                        "converter does not create it)" % out_dir)
    log.write("Saving results to %s\n" % out_dir)
    listings, options = read_source(runner, log=log, fill=task is None, **where)
    splits, stats = conversion.convert(FORMAT, listings, out_dir, runner, check,
                                       do_verify, log, task=task, dali_index=dali_index,
                                       **options.as_kwargs())
    if tfds_metadata:
        tfds_meta.write(out_dir, FORMAT.name, splits, SCHEMA, options.synsets, log)
    return splits, stats
