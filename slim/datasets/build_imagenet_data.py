#!/usr/bin/env python3
"""Convert ILSVRC2012 into TF-slim's ImageNet TFRecords (Python 3 port).

Same flags, shards and records as research/slim datasets/build_imagenet_data.py:
validation-NNNNN-of-00128 and train-NNNNN-of-01024 in --output_directory, 15 features
per image with the class text and the bounding boxes.  Reads the slim tree
(--train_directory/<synset>/*.JPEG, --validation_directory/<synset>/*.JPEG), or with
--source_dir the two release tars in place.

  build_imagenet_data.py --train_directory=T --validation_directory=V \\
      --output_directory=OUT --bounding_box_file=imagenet_2012_bounding_boxes.csv
  build_imagenet_data.py --source_dir=DIR_WITH_TARS --output_directory=OUT ...
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("build_imagenet_data.py")

from absl import flags  # noqa: E402  (absl comes with TensorFlow)

from ilsvrc import pool, shipped  # noqa: E402
from ilsvrc.sources import cached, discover  # noqa: E402
from ilsvrc.formats import conversion, slim  # noqa: E402
from ilsvrc.cli import options  # noqa: E402
from ilsvrc.errors import UsageError, main_guard  # noqa: E402

flags.DEFINE_string("train_directory", "/tmp/", "Training images: <dir>/<synset>/*.JPEG.")
flags.DEFINE_string("validation_directory", "/tmp/", "Validation images sorted by "
                    "synset: <dir>/<synset>/*.JPEG (see "
                    "preprocess_imagenet_validation_data.py).")
flags.DEFINE_string("output_directory", "/tmp/", "Existing directory for all shards.")
flags.DEFINE_integer("train_shards", slim.TRAIN_SHARDS, "Number of training shards.")
flags.DEFINE_integer("validation_shards", slim.VAL_SHARDS, "Number of validation shards.")
flags.DEFINE_integer("num_threads", slim.NUM_THREADS, "Shard layout: the images are cut "
                     "into this many equal runs, each run into shards/num_threads "
                     "shards, as upstream's threads did. Both shard counts must be "
                     "multiples of it. 8 as tensorflow/models; 64 reproduces "
                     "darchr-built datasets. Parallelism is --num_workers.")
flags.DEFINE_string("labels_file", "imagenet_lsvrc_2015_synsets.txt", "Synsets, one a "
                    "line; line k has label k. When left at this default and not in the "
                    "working directory, the shipped copy is used.")
flags.DEFINE_string("imagenet_metadata_file", "imagenet_metadata.txt", "synset<TAB>text "
                    "lines. When left at this default and not in the working directory, "
                    "the shipped copy is used.")
flags.DEFINE_string("bounding_box_file", "./imagenet_2012_bounding_boxes.csv",
                    "CSV from process_bounding_boxes.py; '' for no boxes (empty box "
                    "lists).")
# Our additions (upstream has no equivalent):
flags.DEFINE_string("source_dir", None, "Read ILSVRC2012_img_train.tar and "
                    "ILSVRC2012_img_val.tar in this directory in place (or any other "
                    "copy: split tars, the Kaggle copy, the Hugging Face copy; "
                    "docs/sources.md), instead of --train_directory and "
                    "--validation_directory.")
# --validation_labels_file and the engine's options come from its option table; the
# --help of this script lists them with its own flags.
options.define(flags, "convert", ("labels", "run", "check", "task", "index_only",
                                  "reader"),
               out="--output_directory", dir="--source_dir",
               when="With --source_dir: ")
flags.adopt_module_key_flags(options)

FLAGS = flags.FLAGS
PROG = "build_imagenet_data.py"


def _default_or_shipped(name, shipped):
    """Upstream reads the file relative to the working directory; fall back to ours."""
    value = getattr(FLAGS, name)
    if FLAGS[name].present or os.path.exists(value):
        return value
    return shipped


def run(argv):
    if len(argv) > 1:
        raise UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    slim.check_layout(FLAGS.train_shards, FLAGS.validation_shards, FLAGS.num_threads)
    if FLAGS.source_dir is not None:
        given = [f for f in ("train_directory", "validation_directory") if FLAGS[f].present]
        if given:
            raise UsageError("--source_dir reads the tars; do not combine it with --%s"
                             % given[0])
    elif FLAGS.validation_labels_file is not None:
        raise UsageError("--validation_labels_file only applies with --source_dir")
    bbox_file = FLAGS.bounding_box_file
    if bbox_file and not os.path.isfile(bbox_file) and not FLAGS.index_only:
        raise UsageError("bounding box file %s not found: make it with "
                         "process_bounding_boxes.py, or pass --bounding_box_file='' to "
                         "write empty box lists" % bbox_file)
    workers = options.workers(FLAGS.num_workers)
    index_file = source = None
    if FLAGS.source_dir is not None:
        index_file = cached.index_path(FLAGS.index, FLAGS.output_directory)
        source = discover.find_source(FLAGS.source_dir)
    elif FLAGS.index_only or FLAGS.index:
        raise UsageError("--index and --index_only need --source_dir (the tars)")
    if FLAGS.index_only:
        with pool.Pool(workers) as runner:
            cached.write_index(source, runner, index_file)
            return 0
    if source is not None:
        options.check_index(FLAGS.index, source, "--index_only")
    task = options.resolve_task(FLAGS.task_index, FLAGS.task_count, PROG)
    with conversion.worker_pool(workers) as runner:
        slim.convert(
            FLAGS.output_directory, runner, train_dir=FLAGS.train_directory,
            val_dir=FLAGS.validation_directory, source_dir=source,
            labels_file=_default_or_shipped("labels_file", shipped.SYNSETS_FILE),
            metadata_file=_default_or_shipped("imagenet_metadata_file", shipped.METADATA_FILE),
            bbox_file=bbox_file, val_label_file=FLAGS.validation_labels_file,
            train_shards=FLAGS.train_shards, val_shards=FLAGS.validation_shards,
            num_threads=FLAGS.num_threads, check=FLAGS.image_check,
            do_verify=FLAGS.verify, allow_custom=FLAGS.allow_custom_classes,
            task=task, index_file=index_file, dali_index=FLAGS.dali_index,
            tfds_metadata=FLAGS.tfds_metadata)
    if task is not None:
        sys.stderr.write("Finished task %d of %d in %s\n"
                         % (task.index, task.count, FLAGS.output_directory))
        return 0
    sys.stderr.write("Finished writing all images to %s\n" % FLAGS.output_directory)
    return 0


def main(argv):
    sys.exit(main_guard(lambda: run(argv), PROG))


if __name__ == "__main__":
    options.run_absl(main)
