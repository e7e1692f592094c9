"""`./build.sh DIR`: the seed's one command for the TF official ResNet records.

Reads ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in DIR where they are and
writes DIR/tf_records/train/train-NNNNN-of-01024 and
DIR/tf_records/validation/validation-NNNNN-of-00128 (what darchr's build.sh produced
through docker and imagenet_to_gcs.py, without the docker, the extraction or the
300 GB of scratch space).
"""

import argparse
import sys

from ilsvrc.formats import conversion
from ilsvrc import pool, storage
from ilsvrc.sources import discover
from ilsvrc.formats import extract, official
from ilsvrc.cli import options
from ilsvrc.errors import UsageError, UserError, main_guard

PROG = "build.sh"


def parse(argv):
    p = argparse.ArgumentParser(
        prog=PROG, description="Convert the ILSVRC2012 tars in DIR into TFRecords for the "
        "TF official ResNet (tensorflow/tpu imagenet_to_gcs.py format), reading the tars "
        "in place.",
        epilog="Validation labels come from DIR/synset_labels.txt when present, else from "
        "the Kaggle copy's LOC_val_solution.csv, else from the shipped 50,000-line file. "
        "Rerunning the same command after an interruption "
        "resumes: finished shards are kept.")
    p.add_argument("dir", metavar="DIR", help="directory holding ILSVRC2012_img_train.tar "
                   "and ILSVRC2012_img_val.tar (or the extracted train/ and validation/); "
                   "gs://BUCKET/PATH reads the tars in place from Cloud Storage")
    p.add_argument("-o", "--output", metavar="OUT", help="output directory "
                   "(default: DIR/tf_records); gs://BUCKET/PREFIX writes each shard "
                   "straight to an object (train-* and validation-* side by side)")
    options.add_run_options(p)
    options.add_reader_options(p)
    p.add_argument("--extract", action="store_true", help="also unpack the JPEGs into "
                   "DIR/train/<synset>/ and DIR/validation/ (needs ~150 GB more)")
    p.add_argument("--source", choices=discover.SOURCES, default="auto",
                   help="tar: the release tars; tree: extracted train/ and validation/; "
                   "kaggle: the unpacked Kaggle ILSVRC/ tree; zip: the Kaggle zip in place "
                   "(default auto: the first of those found in DIR)")
    p.add_argument("--labels", metavar="FILE", help="validation label file (default: "
                   "DIR/synset_labels.txt, else the Kaggle copy's LOC_val_solution.csv, else "
                   "the shipped one)")
    options.add_task_options(p)
    a = p.parse_args(argv)
    a.workers = options.workers(a.workers, "--workers")
    return a


def _extract(a, listings, label_file, runner):
    n = extract.extract(*listings, a.dir, label_file, runner)
    sys.stderr.write("extracted %d files into %s/train and %s/validation\n"
                     % (n, a.dir, a.dir))


def run(argv):
    a = parse(argv)
    out = a.output or storage.join(a.dir, "tf_records")
    index_file = options.index_path(a.index, out)
    if a.index_only:
        with pool.Pool(a.workers) as runner:
            return options.write_index(discover.find_source(a.dir, a.source), runner,
                                       index_file)
    task = options.resolve_task(a.task_index, a.task_count, PROG)
    if task is not None and a.extract:
        raise UsageError("--extract does not combine with task mode: extract on one "
                         "machine first, then convert with tasks")
    if a.extract and storage.is_remote(a.dir):
        raise UserError("--extract unpacks into DIR, which must be a local directory "
                        "(not %s)" % a.dir)
    conversion.refuse_remote_extras(out, a.dali_index, a.tfds_metadata)
    if storage.is_remote(out):   # before hours of work, not after
        storage.check_bucket(out, "writing to")
    with pool.Pool(a.workers) as runner:
        if a.extract:
            listings, plan_options = official.read_source(a.dir, runner, "tar", a.labels,
                                                          allow_custom=a.allow_custom_classes)
            _extract(a, listings, plan_options["label_file"], runner)
        if a.extract and a.source in ("auto", "tar"):
            # the tars are indexed once: the same listings feed the conversion
            plan_options["label_file"] = a.labels or official.label_file_for(a.dir)
            official.say_reading(a.dir, "tar", plan_options["label_file"], sys.stderr)
            splits, _ = conversion.convert(official.FORMAT, listings, out, runner, a.check,
                                           not a.no_verify, sys.stderr,
                                           dali_index=a.dali_index, **plan_options)
            if a.tfds_metadata:
                official.write_tfds_metadata(out, splits, listings, plan_options, sys.stderr)
        else:
            official.convert(a.dir, out, runner, check=a.check, source=a.source,
                             do_verify=not a.no_verify, label_file=a.labels,
                             allow_custom=a.allow_custom_classes, task=task,
                             index_file=index_file, dali_index=a.dali_index,
                             tfds_metadata=a.tfds_metadata)
    if task is not None:
        sys.stderr.write("done: task %d of %d; when every task has finished, check the "
                         "whole: ./verify.sh official %s --source %s\n"
                         % (task.index, task.count, out, a.dir))
        return 0
    if storage.is_remote(out):
        sys.stderr.write("done: %s/train-* and %s/validation-*\n" % (out, out))
    else:
        sys.stderr.write("done: %s/train and %s/validation\n" % (out, out))
    return 0


def main(argv=None):
    return main_guard(lambda: run(sys.argv[1:] if argv is None else argv), PROG)


if __name__ == "__main__":
    sys.exit(main())
