"""The output formats by name, for the commands that read shards back (`verify`).

Each format gives its record schema ({feature key: kind}), the range its
`image/class/label` values must fall in, and its shard layout: a list of
(subdirectory of the output directory, file-name prefix, number of shards).
The slim schema is defined here once; ilsvrc.slim imports it.
"""

import collections

from ilsvrc import example, official

B, F, I = example.BYTES, example.FLOAT, example.INT64

# slim build_imagenet_data.py records (spec §4.6): the 7 common features, the label,
# synset and human-readable text, and five box lists (empty when an image has none).
SLIM_SCHEMA = {
    "image/height": I, "image/width": I, "image/colorspace": B, "image/channels": I,
    "image/class/label": I, "image/class/synset": B, "image/class/text": B,
    "image/object/bbox/xmin": F, "image/object/bbox/xmax": F,
    "image/object/bbox/ymin": F, "image/object/bbox/ymax": F,
    "image/object/bbox/label": I,
    "image/format": B, "image/filename": B, "image/encoded": B,
}

Format = collections.namedtuple("Format", "name schema label_range layout")

FORMATS = {
    # tensorflow/tpu imagenet_to_gcs.py: labels 1..1000 over the sorted synsets
    "official": Format("official", official.SCHEMA, (1, 1000),
                       (("train", "train", official.TRAIN_SHARDS),
                        ("validation", "validation", official.VAL_SHARDS))),
    # slim: labels are 1-based lines of the 1000-synset file; all shards in one directory
    "slim": Format("slim", SLIM_SCHEMA, (1, 1000),
                   (("", "train", 1024), ("", "validation", 128))),
}

# Split sizes of the complete ILSVRC2012 release.
FULL_COUNTS = {"train": 1281167, "validation": 50000}
