"""`./verify.sh FORMAT OUT_DIR [--source DIR] [-j N]`: check finished shards;
`./verify.sh --checksums DIR_OR_FILE...`: check downloaded release files.

Re-reads every shard of a conversion and checks, without trusting anything the
writer left behind: the shard names and count (every `-of-NNNNN` file there, no
unknown shard names; leftover `.partial` files are a warning), the framing and
CRC32C of every record, that every record parses with exactly the format's feature
keys and kinds, the ILSVRC2012 label contract (labels 1..1000, every synset one of
the 1000, one synset one label across both splits, labels in the synsets' sorted
order: see ilsvrc.contract.check_label_map), and the number of records per split.  With
`--source DIR` (the directory given to build.sh) the plan is rebuilt from the
source and every shard must hold exactly its planned images, in order, with their
labels: every source image appears exactly once, correctly labelled.  Where the
conversion wrote them, the DALI index files (OUT/dali-index/) must match the shards
and TFDS's dataset_info.json must list their record counts.

OUT_DIR may be the gs://BUCKET/PREFIX a conversion wrote to: its objects are listed
(every split flat under the prefix, as written to a bucket) and each shard is re-read
from the bucket; run locks and partial files do not apply there, nor do the DALI and
TFDS files (written next to local shards only).

Exit status 0 when everything checks out, 1 on any problem (each named with its
shard and record), 2 for bad arguments.

`--checksums` is a separate check, run only when asked: it says which published
release file each given file is (by size, then MD5 and SHA-256;
ilsvrc/verify/checksums.py), or that it is none of them.
"""

import argparse
import os
import sys

from ilsvrc import pool, storage, tasks
from ilsvrc.formats import registry, official, report, slim
from ilsvrc.sources import cached, discover, spool
from ilsvrc.write import lock
from ilsvrc.verify import checksums
from ilsvrc.verify.inventory import check_reader_files, check_shards, inventory
from ilsvrc.cli import options
from ilsvrc.errors import UsageError, UserError, main_guard

PROG = "verify.sh"
SOURCE_WHEN = "with --source: "   # what the options about the source need
MAX_LISTED = 20


CHECKSUMS_HELP = (
    "instead of checking shards: say which published ILSVRC2012 release file each "
    "file is (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar, "
    "ILSVRC2012_devkit_t12.tar.gz), by size and then MD5 and SHA-256 in one read, or "
    "that it is not a published file; a directory stands for its ILSVRC2012_* files, "
    "and the parts of a split tar (NAME.001, ...) are checked as one file. A file of "
    "no published size is not read. Exit 0 only if every file checked is a "
    "published one")


def parse(argv):
    p = argparse.ArgumentParser(
        prog=PROG, description="Re-read every shard of a finished conversion and check "
        "names, record framing and CRCs, feature keys and kinds, labels and counts; "
        "with --source also that every source image is there exactly once with its "
        "label.", usage="%(prog)s FORMAT OUT_DIR [--source DIR] [options]\n"
        "       %(prog)s --checksums DIR_OR_FILE [DIR_OR_FILE ...]")
    p.add_argument("format", choices=sorted(registry.FORMATS), metavar="FORMAT",
                   help="official (OUT_DIR/train, OUT_DIR/validation; flat in a "
                   "bucket) or slim (flat)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="the conversion's output "
                   "directory, or the gs://BUCKET/PREFIX it wrote its shards to (read "
                   "from the bucket)")
    p.add_argument("--source", metavar="DIR", help="the directory the conversion read "
                   "(any copy: the tars, the extracted train/ and validation/, the "
                   "Kaggle or Hugging Face copy): rebuild the plan and compare every "
                   "record with it, byte for byte with what the source gives")
    p.add_argument("--no-image-bytes", action="store_true", help="with --source: "
                   "compare names and labels with the plan but not each record's image "
                   "bytes with the source (faster: the source is not read; the last line "
                   "says so)")
    options.add(p, "verify", ("labels",), when=SOURCE_WHEN)
    p.add_argument("--num-threads", "--num_threads", type=int, default=slim.NUM_THREADS,
                   metavar="T", help="slim with --source: the --num_threads the shards "
                   "were written with (default 8; 64 for darchr-built datasets)")
    p.add_argument("--checksums", action="store_true", help=CHECKSUMS_HELP + ".")
    options.add(p, "verify", ("run", "task"), out="OUT_DIR", when=SOURCE_WHEN)
    a = p.parse_args(argv)
    a.workers = options.workers(a.workers, "--workers")
    if (a.labels or a.no_image_bytes) and not a.source:
        raise UsageError("%s only makes sense with --source"
                         % ("--labels" if a.labels else "--no-image-bytes"))
    return a


# --------------------------------------------------------------------------- plan

PLANNERS = {"official": official.plan_from_source, "slim": slim.plan_from_source}


def describe(count, prefix):
    full = registry.FULL_COUNTS.get(prefix)
    return "full ILSVRC2012" if count == full else "partial: %d of %s" % (
        count, "{:,}".format(full) if full else "?")


def _plan_source(a, fmt, runner, log):
    """--source: the splits the conversion planned from it."""
    options.check_index(a.index, discover.find_source(a.source),
                        "./build.sh ... --index-only")
    splits = PLANNERS[fmt.name](a.source, a.out_dir, runner, a.labels, a.num_threads,
                                a.allow_custom_classes, cached.index_path(a.index,
                                                                          a.out_dir))
    log.write("plan from %s: %s\n" % (a.source, ", ".join(
        "%d %s images" % (s.count, s.prefix) for s in splits)))
    return splits


def _refill(splits, log):
    """A Hugging Face copy's spooled images, read again from the copy when a
    complete run removed them: the records are compared with them."""
    return spool.refill({id(i.container): i.container for s in splits
                         for k in range(s.num_shards) for i in s.shard_items(k)}.values(),
                        log)


def run_checksums(argv, out, log, table=checksums.PUBLISHED):
    """`verify.sh --checksums DIR_OR_FILE...`: one line per file on `out`, the
    summary last; UserError unless every file checked is a published one."""
    p = argparse.ArgumentParser(prog=PROG, description=CHECKSUMS_HELP, usage="%(prog)s "
                                "--checksums DIR_OR_FILE [DIR_OR_FILE ...]")
    p.add_argument("--checksums", action="store_true", required=True)
    p.add_argument("paths", nargs="+", metavar="DIR_OR_FILE")
    a = p.parse_args(argv)
    ok, line = checksums.summary(checksums.check(a.paths, table, out, log))
    if not ok:
        raise UserError(line)
    out.write(line + "\n")
    return 0


def run(argv, out=None, log=None):
    out, log = out or sys.stdout, log or sys.stderr
    if "--checksums" in argv:
        return run_checksums(argv, out, log)
    a = parse(argv)
    fmt = registry.FORMATS[a.format]
    in_bucket = _check_output(a)
    task = options.resolve_task(a.task_index, a.task_count, PROG, log)
    report.begin(PROG, argv, a, a.out_dir)
    shards, problems, warnings = inventory(fmt, a.out_dir)
    if not in_bucket:                   # a bucket takes no run lock
        warnings += _busy(fmt, a.out_dir)
    with pool.Pool(a.workers) as runner:
        splits = _plan_source(a, fmt, runner, log) if a.source else None
        report.mark("plan")
        if task is not None:
            shards = _task_share(fmt, shards, splits, task, log)
        source_bytes = bool(splits) and not a.no_image_bytes
        refilled = _refill(splits, log) if source_bytes else []
        counts, bad = check_shards(fmt, shards, splits, runner, log,
                                   a.allow_custom_classes, source_bytes)
        spool.drain_parts([c.part for c in refilled], log)
        extras = check_reader_files(fmt, a.out_dir, shards, counts, runner) \
            if task is None and not in_bucket else []
    problems += bad
    if task is not None:
        return _task_report(fmt, a, task, shards, problems, warnings, out, log)
    if splits:
        for s in splits:
            if counts[s.prefix] != s.count and not bad:
                problems.append("%s: %d %s records, the source has %d images"
                                % (a.out_dir, counts[s.prefix], s.prefix, s.count))
    nums = {prefix: num for _, prefix, num in fmt.layout}
    present = {prefix: 0 for prefix in nums}
    for prefix, _, _ in shards:
        present[prefix] += 1
    out.write("%s shards in %s\n" % (fmt.name, a.out_dir))
    for prefix, num in nums.items():
        out.write("  %-10s %4d/%d shards  %s records  (%s)\n"
                  % (prefix, present[prefix], num, "{:,}".format(counts[prefix]),
                     describe(counts[prefix], prefix)))
    return _conclude(fmt, a, shards, splits, counts, extras, problems, warnings, out, log)


def _conclude(fmt, a, shards, splits, counts, extras, problems, warnings, out, log):
    """The reader files' lines and the source's, the report, then the warnings and
    problems (raising if there are any), else OK; last, the line naming the report."""
    for line, extra_problems in extras:
        out.write("  %s\n" % line)
        problems += extra_problems
    if splits and not problems:
        out.write("  source: every one of the %s images of %s is there exactly once, "
                  "with its label%s\n" % ("{:,}".format(sum(s.count for s in splits)),
                                          a.source, "" if a.no_image_bytes else
                                          ", each record equal to what the source gives"))
    report.after_verify(fmt, a.out_dir, shards, counts, problems, warnings, splits,
                        extras, log)
    _finish(warnings, problems, a.out_dir, out, log)
    out.write("OK: all %d shards check out%s\n" % (len(shards), " (image bytes not "
              "compared with the source: --no-image-bytes)" if a.no_image_bytes else ""))
    report.say(log, out)
    return 0


def _check_output(a):
    """True for a gs:// output (its bucket must exist), False for a local
    directory; UserError for anything else."""
    if storage.is_remote(a.out_dir):
        a.out_dir = a.out_dir.rstrip("/")
        storage.check_bucket(a.out_dir, "reading")
        return True
    if not os.path.isdir(a.out_dir):
        raise UserError("%s is not a directory (the conversion's output directory)"
                        % a.out_dir)
    return False


def _busy(fmt, out_dir):
    """Warnings for the directories of `out_dir` that a live run still holds."""
    found = []
    for d in sorted({os.path.join(out_dir, sub) if sub else out_dir
                     for sub, _, _ in fmt.layout}):
        live = lock.busy(d)
        if live:
            found.append(live + "; verify once every run and task has finished")
    return found


def _finish(warnings, problems, out_dir, out, log):
    """Print the warnings; list the problems and raise if there are any."""
    for w in warnings:
        out.write("  warning: %s\n" % w)
    out.flush()
    if problems:
        for p in problems[:MAX_LISTED]:
            log.write("%s: problem: %s\n" % (PROG, p))
        if len(problems) > MAX_LISTED:
            log.write("%s: ... and %d more problems\n" % (PROG, len(problems) - MAX_LISTED))
        report.say(log, out)
        raise UserError("%d problem%s found in %s (listed above)"
                        % (len(problems), "" if len(problems) == 1 else "s", out_dir))


def _task_share(fmt, shards, splits, task, log):
    """The shards verify task `task` re-reads: with a plan, exactly those the same
    write task wrote; without, an even deal of the layout's shards."""
    if splits:
        owned = {(s.prefix, k) for s, k in tasks.owned_shards(splits, task, log)}
    else:
        keys = [(prefix, k) for _, prefix, num in fmt.layout for k in range(num)]
        owned = set(tasks.owned(keys, [1] * len(keys), task))
        log.write(tasks.describe(task, [k for k in keys if k in owned], len(keys)) + "\n")
    return [s for s in shards if (s[0], s[1]) in owned]


def _task_report(fmt, a, task, shards, problems, warnings, out, log):
    out.write("%s shards in %s, task %d of %d: %d shards re-read\n"
              % (fmt.name, a.out_dir, task.index, task.count, len(shards)))
    _finish(warnings, problems, a.out_dir, out, log)
    out.write("OK: every shard name is there and this task's %d shards check out%s; "
              "the whole is proven when all %d tasks say OK\n"
              % (len(shards), " against the plan" if a.source else "", task.count))
    return 0


def main(argv=None):
    return main_guard(lambda: run(sys.argv[1:] if argv is None else argv), PROG)


if __name__ == "__main__":
    sys.exit(main())
