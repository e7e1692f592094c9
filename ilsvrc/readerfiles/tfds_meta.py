"""TensorFlow Datasets metadata for our shards, so `tfds.builder_from_directory(OUT)`
reads them as they are, written with the standard library alone (no TFDS, no Beam).

Three files go into the output directory OUT (the directory given to the converter):
  dataset_info.json            name, version, file format, and per split its shard
                               file template and the records of every shard (from
                               the plan, so nothing is read back)
  features.json                the record schema as TFDS features, nested at the
                               '/' of our keys: TFDS joins nested feature names with
                               '/', so {"image": {"encoded": Image}} is our
                               "image/encoded" key
  image-class-label.labels.txt the class names of image/class/label: 0 is
                               "background" (never used), then one synset a line
Feature types: image/encoded is an Image (JPEG, decoded to uint8 HxWx3),
image/class/label a ClassLabel (1..1000), other int64 keys Scalars, byte strings
Text, and the per-box lists of the slim format (image/object/...) rank-1 Tensors.
The shard files keep our names: the split's filepathTemplate is
`{SPLIT}-{SHARD_X_OF_Y}`, under `train/` and `validation/` for the official layout.
"""

import json
import os

from ilsvrc.errors import UserError
from ilsvrc.fsutil import atomic_write
from ilsvrc.records.features import BYTES, FLOAT, INT64

INFO_FILE, FEATURES_FILE = "dataset_info.json", "features.json"
LABEL_KEY = "image/class/label"
IMAGE_KEY = "image/encoded"
LIST_PREFIX = "image/object/"   # slim's per-box lists: any length, also none
VERSION = "1.0.0"
BACKGROUND = "background"
_CLS = "tensorflow_datasets.core.features."


def labels_file_name(key=LABEL_KEY):
    """TFDS keeps a ClassLabel's names in '<feature path with - for />.labels.txt'."""
    return key.replace("/", "-") + ".labels.txt"


def _tensor(cls, dtype, dims):
    shape = {"dimensions": [str(d) for d in dims]} if dims else {}
    return {"pythonClassName": _CLS + cls,
            "tensor": {"shape": shape, "dtype": dtype, "encoding": "none"}}


def feature(key, kind, num_classes):
    """The TFDS feature (features.json form) for one of our keys and its kind."""
    if key == IMAGE_KEY:
        return {"pythonClassName": _CLS + "image_feature.Image",
                "image": {"shape": {"dimensions": ["-1", "-1", "3"]}, "dtype": "uint8",
                          "encodingFormat": "jpeg"}}
    if key == LABEL_KEY:
        return {"pythonClassName": _CLS + "class_label_feature.ClassLabel",
                "classLabel": {"numClasses": str(num_classes)}}
    many = key.startswith(LIST_PREFIX)
    if kind == BYTES and not many:
        return {"pythonClassName": _CLS + "text_feature.Text", "text": {}}
    dtype = {INT64: "int64", FLOAT: "float32"}.get(kind)
    if dtype is None:
        raise ValueError("no TFDS feature for %s of kind %s" % (key, kind))
    if many:
        return _tensor("tensor_feature.Tensor", dtype, [-1])
    return _tensor("scalar.Scalar", dtype, [])


def features(schema, num_classes):
    """features.json: the schema's keys as nested FeaturesDicts."""
    tree = {}
    for key, kind in schema.items():
        *parents, leaf = key.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = feature(key, kind, num_classes)

    def wrap(node):
        return {"pythonClassName": _CLS + "features_dict.FeaturesDict",
                "featuresDict": {"features": {
                    k: (wrap(v) if "pythonClassName" not in v else v)
                    for k, v in sorted(node.items())}}}
    return wrap(tree)


def split_info(root, split):
    """One entry of dataset_info.json's "splits" for a planned write.Split."""
    sub = os.path.relpath(split.out_dir, root)
    template = "{SPLIT}-{SHARD_X_OF_Y}"
    if sub != ".":
        template = sub.replace(os.sep, "/") + "/" + template
    nbytes = sum(os.path.getsize(split.path(k)) for k in range(split.num_shards))
    return {"name": split.prefix, "filepathTemplate": template,
            "shardLengths": [str(end - start) for start, end in split.ranges],
            "numBytes": str(nbytes)}


def dataset_info(root, fmt, splits):
    return {
        "name": "ilsvrc2012_%s" % fmt,
        "version": VERSION,
        "fileFormat": "tfrecord",
        "description": "ILSVRC2012 in the %s TFRecord format, written by imagenet-prep. "
                       "image/class/label runs 1..1000 (0 is background and unused)."
                       % fmt,
        "splits": [split_info(root, s) for s in splits],
    }


def _write(path, text):
    atomic_write(path, text)


def unfinished(splits):
    """The shards of `splits` not (yet) under their final name."""
    return [s.path(k) for s in splits for k in range(s.num_shards)
            if not os.path.exists(s.path(k))]


def write(root, fmt, splits, schema, class_names, log=None):
    """Write the three metadata files into `root` after a finished conversion.
    class_names: the synset of label 1, 2, ... in order.  In task mode each task
    calls it when its own shards are done: it writes when every shard of the plan
    is there (the task that finishes last does), else says so and leaves it."""
    waiting = unfinished(splits)
    if waiting:
        if log is not None:
            log.write("TFDS metadata: %d of the %d shards (%s, ...) are not written yet, "
                      "by the other tasks; the task that finishes last writes %s\n"
                      % (len(waiting), sum(s.num_shards for s in splits),
                         os.path.basename(waiting[0]), os.path.join(root, INFO_FILE)))
        return False
    names = [BACKGROUND] + list(class_names)
    try:
        _write(os.path.join(root, labels_file_name()), "".join(n + "\n" for n in names))
        _write(os.path.join(root, FEATURES_FILE),
               json.dumps(features(schema, len(names)), indent=2) + "\n")
        # dataset_info.json last: it is what TFDS looks for first
        _write(os.path.join(root, INFO_FILE),
               json.dumps(dataset_info(root, fmt, splits), indent=2) + "\n")
    except OSError as err:
        raise UserError("cannot write the TFDS metadata into %s: %s"
                        % (root, err.strerror or err))
    if log is not None:
        log.write("wrote TFDS metadata: %s (tfds.builder_from_directory(%r))\n"
                  % (os.path.join(root, INFO_FILE), root))
    return True


def check(root, layout, counts):
    """verify.sh: when OUT/dataset_info.json exists, its splits must match the
    shards found.  layout: [(prefix, number of shards)]; counts: {prefix: records}.
    Returns (problems, present)."""
    path = os.path.join(root, INFO_FILE)
    if not os.path.exists(path):
        return [], False
    fix = "Rerun the conversion with the TFDS metadata option to rewrite it."
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        splits = {s["name"]: s for s in info["splits"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        return ["%s is not TFDS metadata (%s). %s" % (path, err, fix)], True
    problems = []
    for prefix, num in layout:
        s = splits.get(prefix)
        if s is None:
            problems.append("%s has no %s split. %s" % (path, prefix, fix))
            continue
        lengths = [int(n) for n in s.get("shardLengths", [])]
        if len(lengths) != num or sum(lengths) != counts.get(prefix):
            problems.append("%s: split %s lists %d shards with %d records, the shards "
                            "hold %d in %d. %s" % (path, prefix, len(lengths),
                                                   sum(lengths), counts.get(prefix, 0),
                                                   num, fix))
    return problems, True
