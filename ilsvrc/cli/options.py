"""Pieces the command-line scripts share: our absl flags, worker counts, and the
argument handling of the small positional-argument scripts."""

import sys

from ilsvrc import image, pool
from ilsvrc.errors import UsageError


def define_flags(flags):
    """Define --num_workers, --image_check and --verify on absl's `flags` module."""
    flags.DEFINE_integer("num_workers", None, "Worker processes (default: one per CPU "
                         "core). The output does not depend on it.")
    flags.DEFINE_enum("image_check", "header", list(image.CHECKS), "header: read size "
                      "from the JPEG header and check its structure (fast); decode: "
                      "decode every image with TensorFlow as upstream does.")
    flags.DEFINE_boolean("verify", True, "Re-read every shard after writing and check "
                         "it against the plan.")


def add_run_options(parser, check=True):
    """-j/--workers (and --check, --no-verify) for the argparse front ends."""
    parser.add_argument("-j", "--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: one per CPU core, here %d; "
                        "0 = all in this process). The output does not depend on it."
                        % pool.default_workers())
    if check:
        parser.add_argument("--check", choices=image.CHECKS, default="header",
                            help="image check: 'header' reads size and structure from "
                            "the JPEG header (default, fast); 'decode' decodes every "
                            "image with TensorFlow, as upstream does")
        parser.add_argument("--no-verify", action="store_true",
                            help="skip re-reading the shards after writing")


def workers(num_workers, flag="--num_workers"):
    """The number of worker processes for a --num_workers value (None: one per core)."""
    if num_workers is not None and num_workers < 0:
        raise UsageError("%s must be 0 or more" % flag)
    return pool.default_workers() if num_workers is None else num_workers


def positional(args, usage, doc, least, most):
    """-h/--help prints usage and `doc` (minus its first paragraph) and returns 0;
    a count outside least..most (most None: no limit) prints usage on stderr and
    returns upstream's 255.  None: go on."""
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(usage + doc.split("\n\n", 1)[-1])
        return 0
    if len(args) < least or (most is not None and len(args) > most):
        sys.stderr.write(usage)
        return 255  # upstream exits with status -1
    return None


def define_reader_flags(flags):
    """Define --dali_index and --tfds_metadata on absl's `flags` module."""
    flags.DEFINE_boolean("dali_index", False, "Also write a DALI index file per shard "
                         "(OUT/dali-index/<split>/<shard>.idx) for "
                         "nvidia.dali fn.readers.tfrecord; see docs/readers.md.")
    flags.DEFINE_boolean("tfds_metadata", False, "Also write TFDS metadata "
                         "(dataset_info.json, features.json) so that "
                         "tfds.builder_from_directory(OUT) reads the shards.")


def add_reader_options(parser):
    """--dali-index and --tfds-metadata for the argparse front ends."""
    parser.add_argument("--dali-index", "--dali_index", action="store_true",
                        help="also write a DALI index file per shard "
                        "(OUT/dali-index/<split>/<shard>.idx) for nvidia.dali's "
                        "fn.readers.tfrecord; a rerun adds those missing")
    parser.add_argument("--tfds-metadata", "--tfds_metadata", action="store_true",
                        help="also write TFDS metadata (dataset_info.json, "
                        "features.json) so that tfds.builder_from_directory(OUT) "
                        "reads the shards")
