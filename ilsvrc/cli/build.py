"""`./build.sh DIR`: the TF official ResNet records of the ILSVRC2012 copy in DIR.

Reads ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in DIR where they are (or
another copy of the release, --source) and writes
DIR/tf_records/train/train-NNNNN-of-01024 and
DIR/tf_records/validation/validation-NNNNN-of-00128 (what darchr's build.sh produced
through docker and imagenet_to_gcs.py, without the docker, the extraction or the
300 GB of scratch space).
"""

import argparse
import sys

from ilsvrc import pool, storage
from ilsvrc.cli import options
from ilsvrc.errors import UsageError, UserError, main_guard
from ilsvrc.formats import conversion, official, report
from ilsvrc.sources import cached, discover

PROG = "build.sh"


def parse(argv):
    p = argparse.ArgumentParser(
        prog=PROG, description="Convert the ILSVRC2012 release in DIR into the TFRecords "
        "of the TF official ResNet (the format of tensorflow/tpu's imagenet_to_gcs.py): "
        "OUT/train/train-NNNNN-of-01024 and OUT/validation/validation-NNNNN-of-00128. The "
        "tars are read in place; the extracted tree, the Kaggle copy and the Hugging Face "
        "copy are read as well (--source).",
        epilog="Interrupted? Run it again with the same arguments: the shards already "
        "finished are kept and only the others are written. ./verify.sh official OUT "
        "--source DIR then checks the result against the source.")
    p.add_argument("dir", metavar="DIR", help="directory holding ILSVRC2012_img_train.tar "
                   "and ILSVRC2012_img_val.tar, or another copy of the release (--source); "
                   "gs://BUCKET/PATH reads the tars in place from Cloud Storage")
    p.add_argument("-o", "--output", metavar="OUT", help="output directory "
                   "(default: DIR/tf_records); gs://BUCKET/PREFIX writes each shard "
                   "straight to an object (train-* and validation-* side by side)")
    options.add(p, "convert", ("run", "check", "reader"))
    p.add_argument("--extract", action="store_true", help="also unpack the JPEGs into "
                   "DIR/train/<synset>/ and DIR/validation/ (needs ~150 GB more)")
    options.add(p, "convert", ("source", "labels"))
    options.add(p, "convert", ("task", "index_only"))
    a = p.parse_args(argv)
    a.workers = options.workers(a.workers, "--workers")
    return a


def _checks(a, task, out):
    """The refusals due before any work (the order of upstream's checks)."""
    if task is not None and a.extract:
        raise UsageError("--extract does not combine with task mode: extract on one "
                         "machine first, then convert with tasks")
    if a.extract and storage.is_remote(a.labels):
        raise UsageError("--extract copies --labels into DIR/synset_labels.txt, which "
                         "needs a local file: copy %s here first (gcloud storage cp)"
                         % a.labels)
    if a.extract and storage.is_remote(a.dir):
        raise UserError("--extract unpacks into DIR, which must be a local directory "
                        "(not %s)" % a.dir)
    conversion.refuse_remote_extras(out, a.dali_index, a.tfds_metadata)
    if storage.is_remote(out):   # before hours of work, not after
        storage.check_bucket(out, "writing to")


def _convert(a, out, runner, task, index_file):
    """The conversion, through the one official entry; with --extract the tars are
    unpacked first and (converting from the tars) their listings reused."""
    listings = None
    if a.extract:
        tars = discover.find_source(a.dir, "tar")
        options.check_index(a.index, tars)
        listings = official.extract_source(tars, runner, a.labels, sys.stderr,
                                           a.allow_custom_classes)
    if a.extract and a.source in ("auto", "tar"):
        # the tars are indexed once: the same listings feed the conversion
        source, index_file = tars, None
    else:
        source = discover.find_source(a.dir, a.source)
        options.check_index(a.index, source)
        listings = None
    official.convert(source, out, runner, check=a.check, do_verify=not a.no_verify,
                     label_file=a.labels, allow_custom=a.allow_custom_classes, task=task,
                     index_file=index_file, dali_index=a.dali_index,
                     tfds_metadata=a.tfds_metadata, listings=listings)


def run(argv):
    a = parse(argv)
    out = a.output or storage.join(a.dir, "tf_records")
    report.begin(PROG, argv, a, out)
    index_file = cached.index_path(a.index, out)
    if a.index_only:
        with pool.Pool(a.workers) as runner:
            cached.write_index(discover.find_source(a.dir, a.source), runner, index_file)
            return 0
    task = options.resolve_task(a.task_index, a.task_count, PROG)
    _checks(a, task, out)
    with conversion.worker_pool(a.workers) as runner:
        _convert(a, out, runner, task, index_file)
    if task is not None:
        sys.stderr.write("done: task %d of %d; when every task has finished, check the "
                         "whole: ./verify.sh official %s --source %s\n"
                         % (task.index, task.count, out, a.dir))
        return 0
    if storage.is_remote(out):
        sys.stderr.write("done: %s/train-* and %s/validation-*\n" % (out, out))
    else:
        sys.stderr.write("done: %s/train and %s/validation\n" % (out, out))
    report.say(sys.stderr)
    return 0


def main(argv=None):
    return main_guard(lambda: run(sys.argv[1:] if argv is None else argv), PROG)


if __name__ == "__main__":
    sys.exit(main())
