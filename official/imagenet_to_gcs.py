#!/usr/bin/env python3
"""Convert ILSVRC2012 into TFRecords for the TF official ResNet (tensorflow/tpu format).

Python 3 port of tensorflow/tpu tools/datasets/imagenet_to_gcs.py (see patches/):
same flags, same shards and records.  --raw_data_dir may hold the extracted layout
(train/<synset>/*.JPEG, validation/*.JPEG, synset_labels.txt) or simply the two
release tars, which are then read in place.

  imagenet_to_gcs.py --raw_data_dir=DIR --local_scratch_dir=OUT --nogcs_upload

With --gcs_upload each worker writes its shards straight to --gcs_output_path (no
local copy, no second pass); --raw_data_dir may be gs://BUCKET/PATH (tars read in
place).  See docs/cloud-storage.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("imagenet_to_gcs.py")

from absl import flags  # noqa: E402  (absl comes with TensorFlow)

from ilsvrc import pool, storage  # noqa: E402
from ilsvrc.cli import options  # noqa: E402
from ilsvrc.errors import UsageError, main_guard  # noqa: E402
from ilsvrc.formats import conversion, official  # noqa: E402
from ilsvrc.sources import cached, discover  # noqa: E402

flags.DEFINE_string("project", None, "Google Cloud project that owns the bucket "
                    "(needed with --gcs_upload).")
flags.DEFINE_string("gcs_output_path", None, "Destination gs://bucket[/prefix]: each "
                    "shard is written straight to bucket/prefix/train-... or "
                    "validation-... (needed with --gcs_upload).")
flags.DEFINE_string("local_scratch_dir", None, "With --nogcs_upload: directory for the "
                    "shards, <dir>/train/train-NNNNN-of-01024 and "
                    "<dir>/validation/validation-NNNNN-of-00128.  With --gcs_upload no "
                    "shard is written here, only the source index file.")
flags.DEFINE_string("raw_data_dir", None, "Directory (or gs://bucket/path) with the two "
                    "ILSVRC2012 tars, or a directory with the extracted train/ and "
                    "validation/ directories or another copy of the release (--source).")
flags.DEFINE_boolean("gcs_upload", True, "Write the shards to --gcs_output_path; "
                     "--nogcs_upload keeps them in --local_scratch_dir only.")
# Our additions (upstream has no equivalent), from the engine's option table; the
# --help of this script lists them with its own flags.
options.define(flags, "convert", ("run", "check", "task", "index_only", "reader",
                                  "source"),
               out="--local_scratch_dir", dir="--raw_data_dir", remote_index="")
flags.adopt_module_key_flags(options)

FLAGS = flags.FLAGS
PROG = "imagenet_to_gcs.py"


def run(argv):
    if len(argv) > 1:
        raise UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    # Same order of checks as upstream.
    uploading, destination = FLAGS.gcs_upload, FLAGS.gcs_output_path
    if uploading and FLAGS.project is None:
        raise UsageError("--project is required when uploading (or pass --nogcs_upload)")
    if uploading and destination is None:
        raise UsageError("--gcs_output_path is required when uploading (or pass "
                         "--nogcs_upload)")
    if uploading and not destination.startswith("gs://"):
        raise UsageError("--gcs_output_path must start with gs://")
    scratch = FLAGS.local_scratch_dir
    if scratch is None:
        raise UsageError("--local_scratch_dir is required: where to write the shards")
    options.refuse_bucket(scratch, "--local_scratch_dir")
    if FLAGS.raw_data_dir is None:
        raise UsageError("--raw_data_dir is required: downloading from image-net.org is "
                         "no longer supported; point it at the directory holding the "
                         "ILSVRC2012 tars or the extracted train/ and validation/")
    if FLAGS.num_workers is not None and FLAGS.num_workers < 0:
        raise UsageError("--num_workers must be 0 or more")
    cache_dir = None   # where a gs:// source's index and label file are kept
    if uploading or storage.is_remote(FLAGS.raw_data_dir):
        if FLAGS.project:
            os.environ["GOOGLE_CLOUD_PROJECT"] = FLAGS.project   # workers inherit it
        cache_dir = scratch
    out = destination if uploading else scratch
    workers = pool.default_workers() if FLAGS.num_workers is None else FLAGS.num_workers
    index_file = cached.index_path(FLAGS.index, scratch, cache_dir)
    if FLAGS.index_only:
        with pool.Pool(workers) as runner:
            cached.write_index(discover.find_source(FLAGS.raw_data_dir, FLAGS.source),
                               runner, index_file, cache_dir)
            return 0
    source = discover.find_source(FLAGS.raw_data_dir, FLAGS.source)
    options.check_index(FLAGS.index, source, "--index_only")
    task = options.resolve_task(FLAGS.task_index, FLAGS.task_count, PROG)
    if uploading:   # fail before hours of work, not after
        conversion.refuse_remote_extras(destination, FLAGS.dali_index,
                                        FLAGS.tfds_metadata)
        storage.check_bucket(destination, "writing to")
    # with --gcs_upload each worker writes its shards straight to the bucket; in
    # task mode only the task's own shards (write.owned_shards), so each task
    # uploads exactly what it wrote
    with conversion.worker_pool(workers) as runner:
        official.convert(source, out, runner, check=FLAGS.image_check,
                         do_verify=FLAGS.verify, cache_dir=cache_dir,
                         allow_custom=FLAGS.allow_custom_classes,
                         task=task, index_file=index_file,
                         dali_index=FLAGS.dali_index,
                         tfds_metadata=FLAGS.tfds_metadata)
    return 0


def main(argv):
    sys.exit(main_guard(lambda: run(argv), PROG))


if __name__ == "__main__":
    options.run_absl(main)
