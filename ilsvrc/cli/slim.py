"""The slim shell drivers: `slim/download_and_convert_imagenet.sh DIR` and
`slim/datasets/download_imagenet.sh OUTDIR`, without prompts or downloads.

download_and_convert_imagenet.sh DIR takes ILSVRC2012_img_train.tar,
ILSVRC2012_img_val.tar and ILSVRC2012_bbox_train_v2.tar.gz from DIR and writes
DIR/raw-data/imagenet_2012_bounding_boxes.csv, then DIR/validation-NNNNN-of-00128 and
DIR/train-NNNNN-of-01024, reading the tars in place.  With --extract it first unpacks
DIR/raw-data/train/<synset>/ and DIR/raw-data/validation/<synset>/ (upstream's
raw-data tree) and converts from there; the records are the same.
"""

import argparse
import os
import sys

from ilsvrc import contract, pool, shipped, storage
from ilsvrc.cli import options
from ilsvrc.errors import UsageError, UserError, main_guard
from ilsvrc.formats import bbox, conversion, extract, report, slim
from ilsvrc.sources import cached, discover, kagglezip, tarindex
from ilsvrc.storage import cache

CONVERT, EXTRACT = "download_and_convert_imagenet.sh", "download_imagenet.sh"


def extract_raw(source, raw_dir, synsets_file, runner, log=sys.stderr, allow_custom=False,
                labels=None):
    """Unpack the tars of `source` (a discover.Source, or the directory holding them)
    into raw_dir/train/<synset>/ and raw_dir/validation/<synset>/.

    Only classes of synsets_file are unpacked; validation images go straight into
    their synset folder (the layout preprocess_imagenet_validation_data.py makes).
    Resumable: files already there with the right size are kept.
    """
    train, val = slim.source_listings(source, runner, labels, allow_custom=allow_custom)
    wanted = contract.read_synset_file(synsets_file, "synsets file",
                                       allow_custom=allow_custom)
    absent = sorted(set(wanted) - set(train.group_names))
    if absent:
        log.write("note: %d synsets of %s have no images in the source (%s%s); nothing "
                  "to unpack for them\n" % (len(absent), synsets_file,
                                             ", ".join(absent[:3]),
                                             ", ..." if len(absent) > 3 else ""))
    wanted = set(wanted)
    kept = train.like()
    for i in range(len(train)):
        if train.group_of(i) in wanted:
            kept.add(train.names[i], train.group_of(i), train.container[i],
                     train.offset[i], train.size[i])
    n = extract.extract(kept, val, raw_dir, None, runner)
    log.write("unpacked %d files into %s/train and %s/validation\n" % (n, raw_dir, raw_dir))


def _parser(prog, what, after):
    return argparse.ArgumentParser(prog=prog, description=what, epilog=after)


def _parse_convert(argv):
    p = _parser(CONVERT, "Build TF-slim's ImageNet TFRecords in DIR from the ILSVRC2012 "
                "tars in DIR, read in place: DIR/validation-NNNNN-of-00128, "
                "DIR/train-NNNNN-of-01024 and DIR/raw-data/imagenet_2012_bounding_boxes.csv.",
                "Unlike upstream's script it downloads nothing and asks nothing: the tars "
                "(and the box archive, unless --no-boxes) must be in DIR already. A second "
                "run after an interruption keeps the finished shards. To check the "
                "result: ./verify.sh slim DIR --source DIR.")
    p.add_argument("dir", metavar="DIR", help="directory holding ILSVRC2012_img_train.tar, "
                   "ILSVRC2012_img_val.tar and %s" % bbox.ARCHIVE)
    p.add_argument("--no-boxes", action="store_true", help="convert without %s: every "
                   "record gets empty box lists" % bbox.ARCHIVE)
    p.add_argument("--extract", action="store_true", help="also unpack the images into "
                   "DIR/raw-data/train/<synset>/ and DIR/raw-data/validation/<synset>/ "
                   "(upstream's layout, ~150 GB more) and convert from there")
    options.add(p, "convert", ("labels",))
    p.add_argument("--num-threads", "--num_threads", type=int, default=slim.NUM_THREADS,
                   metavar="T", help="shard layout of upstream's threads (default 8 as "
                   "tensorflow/models; 64 reproduces darchr-built datasets)")
    options.add(p, "convert", ("run", "check", "task", "index_only", "reader"),
                out="DIR")
    a = p.parse_args(argv)
    a.workers = options.workers(a.workers, "--workers")
    slim.check_layout(slim.TRAIN_SHARDS, slim.VAL_SHARDS, a.num_threads)
    return a


def _places(a):
    """(top, raw-data directory, remote) of DIR: a bucket's box CSV is written
    locally, next to its index."""
    remote = storage.is_remote(a.dir)   # gs://: archives read and shards written there
    top = a.dir.rstrip("/") if remote else os.path.abspath(a.dir.rstrip("/") or "/")
    if remote and a.extract:
        raise UserError("--extract unpacks into DIR/raw-data, which needs a local DIR "
                        "(not %s)" % a.dir)
    if not remote and not os.path.isdir(top):
        raise UserError("%s is not a directory; give the directory holding the "
                        "ILSVRC2012 tars" % a.dir)
    raw = os.path.join(cache.index_dir(), "raw-data") if remote else \
        os.path.join(top, "raw-data")
    return top, raw, remote


def _box_csv(a, source, top, raw, remote):
    """Write DIR/raw-data/imagenet_2012_bounding_boxes.csv from the box archive (or
    the Kaggle copy's XMLs); its path, '' with --no-boxes."""
    archive = storage.join(top, bbox.ARCHIVE)
    if remote:
        have_archive = storage.store_for(archive).stat(archive) is not None
    else:
        if not os.path.isfile(archive) and source.kind in ("kaggle", "zip"):
            archive = kagglezip.find_annotations(top)   # the Kaggle copy carries the XMLs
        have_archive = bool(archive and os.path.exists(archive))
    if not a.no_boxes and not have_archive:
        raise UserError("missing %s: put the bounding box archive there, or pass "
                        "--no-boxes to convert without boxes"
                        % storage.join(top, bbox.ARCHIVE))
    try:
        os.makedirs(raw, exist_ok=True)
    except OSError as err:
        raise UserError("cannot create %s: %s" % (raw, err.strerror or err))
    if a.no_boxes:
        return ""
    csv = os.path.join(raw, bbox.CSV_NAME)
    n = bbox.write_csv(archive, csv, set(slim.load_synsets(shipped.SYNSETS_FILE)))
    sys.stderr.write("wrote %d boxes to %s\n" % (n, csv))
    return csv


def _convert(a, source, top, raw, csv, task, index_file):
    with conversion.worker_pool(a.workers) as runner:
        where = dict(source_dir=source, index_file=index_file, val_label_file=a.labels)
        if a.extract:
            # validation images land in their synset folders directly, so there is
            # nothing left for preprocess_imagenet_validation_data.py to move
            extract_raw(source, raw, shipped.SYNSETS_FILE, runner,
                        allow_custom=a.allow_custom_classes, labels=a.labels)
            where = dict(train_dir=os.path.join(raw, "train"),
                         val_dir=os.path.join(raw, "validation"))
        slim.convert(top, runner, bbox_file=csv, num_threads=a.num_threads,
                     check=a.check, do_verify=not a.no_verify,
                     allow_custom=a.allow_custom_classes, task=task,
                     dali_index=a.dali_index, tfds_metadata=a.tfds_metadata, **where)


def convert_main(argv):
    a = _parse_convert(argv)
    top, raw, remote = _places(a)
    report.begin(CONVERT, argv, a, top)
    source = discover.find_source(top, "auto")
    index_file = cached.index_path(a.index, top)
    if a.index_only:
        with pool.Pool(a.workers) as runner:
            cached.write_index(source, runner, index_file)
            return 0
    options.check_index(a.index, source)
    task = options.resolve_task(a.task_index, a.task_count, CONVERT)
    if task is not None and a.extract:
        raise UsageError("--extract does not combine with task mode: extract on one "
                         "machine first, then convert with tasks")
    if source.kind == "tree":
        raise UserError("missing %s and %s in %s: put the ILSVRC2012 tars there (nothing "
                        "is downloaded)" % (tarindex.TRAIN_TAR, tarindex.VAL_TAR, top))
    csv = _box_csv(a, source, top, raw, remote)
    _convert(a, source, top, raw, csv, task, index_file)
    if task is not None:
        sys.stderr.write("done: task %d of %d; when every task has finished, check the "
                         "whole: ./verify.sh slim %s --source %s\n"
                         % (task.index, task.count, top, top))
        return 0
    sys.stderr.write("done: %s/validation-*-of-%05d and %s/train-*-of-%05d\n"
                     % (top, slim.VAL_SHARDS, top, slim.TRAIN_SHARDS))
    report.say(sys.stderr)
    return 0


def extract_main(argv):
    p = _parser(EXTRACT, "Unpack the ILSVRC2012 tars into OUTDIR/train/<synset>/ and "
                "OUTDIR/validation/<synset>/ (the raw-data tree of TF-slim): the training "
                "images of the classes SYNSETS_FILE lists, and every validation image.",
                "Upstream's script fetched the tars from image-net.org; this one downloads "
                "nothing and asks for no credentials. Files already unpacked with the "
                "right size are kept, so an interrupted run completes when started again.")
    p.add_argument("outdir", metavar="OUTDIR", nargs="?", default="imagenet-data",
                   help="where to unpack (default ./imagenet-data)")
    p.add_argument("synsets", metavar="SYNSETS_FILE", nargs="?", default=shipped.SYNSETS_FILE,
                   help="classes to unpack (default: the 1000 shipped synsets)")
    p.add_argument("--tars", metavar="DIR", help="directory holding the tars (default: "
                   "the parent of OUTDIR, as upstream)")
    options.add(p, "extract", ("run",))
    a = p.parse_args(argv)
    outdir = os.path.abspath(a.outdir)
    tars = os.path.abspath(a.tars) if a.tars else os.path.dirname(outdir)
    with pool.Pool(options.workers(a.workers, "--workers")) as runner:
        extract_raw(tars, outdir, a.synsets, runner, allow_custom=a.allow_custom_classes)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("convert", "extract"):
        sys.stderr.write("usage: python -m ilsvrc.cli.slim {convert,extract} ...\n")
        return 2
    if argv[0] == "convert":
        return main_guard(lambda: convert_main(argv[1:]), CONVERT)
    return main_guard(lambda: extract_main(argv[1:]), EXTRACT)


if __name__ == "__main__":
    sys.exit(main())
