"""The output formats by name, for the commands that read shards back (`verify`).

Each format gives its record schema ({feature key: kind}), the range its
`image/class/label` values must fall in, and its shard layout: a list of
(subdirectory of the output directory, file-name prefix, number of shards).
Each schema is defined once, in its format's module.
"""

import collections

from ilsvrc import official, slim

Format = collections.namedtuple("Format", "name schema label_range layout")

FORMATS = {
    # tensorflow/tpu imagenet_to_gcs.py: labels 1..1000 over the sorted synsets
    "official": Format("official", official.SCHEMA, (1, 1000),
                       (("train", "train", official.TRAIN_SHARDS),
                        ("validation", "validation", official.VAL_SHARDS))),
    # slim: labels are 1-based lines of the 1000-synset file; all shards in one directory
    "slim": Format("slim", slim.SCHEMA, (1, 1000),
                   (("", "train", slim.TRAIN_SHARDS), ("", "validation", slim.VAL_SHARDS))),
}

# Split sizes of the complete ILSVRC2012 release.
FULL_COUNTS = {"train": 1281167, "validation": 50000}
