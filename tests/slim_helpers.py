"""Shared pieces of the slim tests: a sample release with boxes, record readers and
the CSV lines expected for each annotation case of ilsvrc.testing.sample.BOX_CASES."""

import io
import os

from conftest import shard_records
from ilsvrc import pool
from ilsvrc.formats import slim

# Hand-computed from BOX_CASES: coordinates / image size, corners ordered, clamped.
CASE_LINES = {
    "normal": ["0.1000,0.0800,0.5000,0.8000"],          # 50/500 30/375 250/500 300/375
    "two": ["0.0000,0.0000,0.2000,0.2000",
            "0.5000,0.4987,1.0000,1.0000"],              # 187/375 = 0.49866..
    "swapped": ["0.2000,0.1250,0.8000,0.7500"],          # x 400,100  y 300,50 of 500x400
    "outside": ["0.0000,0.0250,1.0000,1.0000"],          # -20 -> 0, 600 -> 1, 420 -> 1
    "degenerate": [],                                    # zero width/height, all dropped
    "human": ["0.1000,0.1000,0.5000,0.5000"],            # Scottish_deerhound tolerated
    "filename": ["0.1000,0.1000,0.5000,0.5000"],         # filename tag '%s' ignored
    "object0": [],                  # object 0 names another synset: whole file dropped
    "object1": ["0.1000,0.1000,0.5000,0.5000",
                "0.0000,0.0000,1.0000,1.0000"],          # object 0 is right: both kept
    "rounding": ["0.3333,0.3333,0.6667,0.6667"],         # 1/3, 2/3
}
UNFILTERED = {"object0": ["0.1000,0.1000,0.5000,0.5000", "0.0000,0.0000,1.0000,1.0000"],
              "foreign": ["0.1000,0.1000,0.5000,0.5000"]}


def expected_csv(manifest, synsets_filter=True):
    lines = []
    for name, case in manifest["bbox"].items():
        values = CASE_LINES.get(case, [])
        if not synsets_filter:
            values = UNFILTERED.get(case, values)
        lines += ["%s,%s" % (name, v) for v in values]
    return sorted(lines)


records = shard_records


def shard_paths(out, prefix, n):
    return [os.path.join(out, "%s-%05d-of-%05d" % (prefix, k, n)) for k in range(n)]


def convert(out, workers=0, **kw):
    os.makedirs(out, exist_ok=True)
    log = io.StringIO()
    with pool.Pool(workers) as runner:
        splits, _ = slim.convert(out, runner, log=log, **kw)
    return splits, log.getvalue()


def slim_decoder_keys(tf):
    """keys_to_features as research/slim datasets/imagenet.py declares them (A11),
    written here from its documented keys."""
    return {
        "image/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
        "image/format": tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        "image/class/text": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
        "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    }


def parse_with_slim_keys(tf, paths):
    """Parse every record of `paths` with the slim decoder keys; return the boxes seen."""
    keys, nboxes = slim_decoder_keys(tf), 0
    for path in paths:
        for raw in tf.data.TFRecordDataset(path):
            p = tf.io.parse_single_example(raw, keys)
            assert p["image/format"].numpy() == b"JPEG"
            assert 1 <= int(p["image/class/label"]) <= 1000
            assert p["image/class/text"].numpy()
            assert tf.io.decode_jpeg(p["image/encoded"], channels=3).shape[2] == 3
            n = p["image/object/bbox/xmin"].values.shape[0]
            assert p["image/object/bbox/ymax"].values.shape[0] == n
            assert p["image/object/class/label"].values.shape[0] == 0  # A11: not written
            nboxes += n
    return nboxes
