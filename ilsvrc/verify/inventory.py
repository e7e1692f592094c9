"""What `./verify.sh` checks in a finished output directory besides the records: the
shard names against the format's layout, every shard re-read (reread's driver) with
the label contract over all of them, and the reader files (DALI index files, TFDS
metadata) where the conversion wrote them.

`fmt` is an output format (formats.conversion.Format): its `layout` ((subdirectory,
prefix, shards) per split), `schema` and `exact_labels` are all that is used.  A
gs:// output holds every split flat under its prefix (as a conversion writes to a
bucket): its objects are listed once and each shard is re-read from the bucket.
"""

import os
import re

from ilsvrc import contract, plan, storage
from ilsvrc.progress import Progress
from ilsvrc.readerfiles import dali, tfds_meta
from ilsvrc.records import checks
from ilsvrc.verify import reread

SHARD_NAME = re.compile(r"(?P<prefix>[a-z]+)-\d{5}-of-\d{5}")


def _directories(fmt, out_dir):
    """{directory: [(prefix, shards)]} of the layout under `out_dir` (a gs:// prefix:
    all of them flat)."""
    by_dir = {}
    flat = storage.is_remote(out_dir)
    if flat:
        out_dir = out_dir.rstrip("/")
    for sub, prefix, num in fmt.layout:
        by_dir.setdefault(os.path.join(out_dir, sub) if sub and not flat else out_dir,
                          []).append((prefix, num))
    return by_dir


def _names(directory):
    """The names in `directory`: its files, or the objects right under a gs://
    prefix (FileNotFoundError when it has none)."""
    if not storage.is_remote(directory):
        return set(os.listdir(directory))
    start = directory.rstrip("/") + "/"
    names = {info.path[len(start):] for info in storage.store_for(start).list(start)}
    names = {n for n in names if n and "/" not in n}
    if not names:
        raise FileNotFoundError(directory)
    return names


def inventory(fmt, out_dir):
    """Look at the file names only.

    Returns (shards, problems, warnings): shards = [(prefix, k, path)] of the expected
    shards that exist, in layout order.
    """
    shards, problems, warnings = [], [], []
    prefixes = {prefix for _, prefix, _ in fmt.layout}
    for directory, entries in _directories(fmt, out_dir).items():
        try:
            names = _names(directory)
        except FileNotFoundError:
            problems.append("%s %s (no %s shards)" % (
                directory, "holds no objects" if storage.is_remote(directory)
                else "does not exist", " or ".join(p for p, _ in entries)))
            continue
        except OSError as err:
            problems.append("cannot list %s: %s" % (directory, err.strerror or err))
            continue
        expected = set()
        for prefix, num in entries:
            expected.update(_present(directory, prefix, num, names, shards, problems))
        for name in sorted(names - expected):   # (a bucket has no partial files)
            _stranger(directory, name, entries, prefixes, problems,
                      [] if storage.is_remote(directory) else warnings)
    return shards, problems, warnings


def _present(directory, prefix, num, names, shards, problems):
    """Add the shards of `prefix` found among `names` to `shards`, a problem for the
    missing ones; return the names expected."""
    expected, missing = [], []
    for k in range(num):
        name = plan.shard_name(prefix, k, num)
        expected.append(name)
        if name in names:
            shards.append((prefix, k, storage.join(directory, name)))
        else:
            missing.append(name)
    if missing:
        problems.append("%s: %d of %d %s shards missing (%s%s)"
                        % (directory, len(missing), num, prefix, ", ".join(missing[:3]),
                           ", ..." if len(missing) > 3 else ""))
    return expected


def _stranger(directory, name, entries, prefixes, problems, warnings):
    """A file the layout does not expect: an unknown shard name is a problem, a
    partial file a warning, anything else is none of verify's business."""
    m = SHARD_NAME.fullmatch(name)
    if (m and m.group("prefix") in prefixes) or \
            any(name.startswith(p + "-") for p in prefixes):
        problems.append("%s: unknown shard name (expected %s); remove it or check the "
                        "format" % (storage.join(directory, name), " and ".join(
                            "%s-NNNNN-of-%05d" % e for e in entries)))
    elif name.startswith(".") and name.endswith(".partial"):
        if any(name.startswith(".%s-" % p) for p, _ in entries):
            warnings.append("%s: unfinished file of a run that was stopped or is still "
                            "running (the next build into this directory removes it "
                            "once its run has ended)" % os.path.join(directory, name))
        else:
            warnings.append("%s: a partial file that is not one of this directory's "
                            "shards; no build removes it (remove it if nothing is "
                            "writing it)" % os.path.join(directory, name))


def check_shards(fmt, shards, splits, runner, log, custom=False, source_bytes=False):
    """Re-read every shard [(prefix, k, path)] (against its plan where `splits` has
    its split; with source_bytes, every record against the record the source's
    bytes give now) and check the contract over all of them (one synset one label,
    ILSVRC2012 labels); return ({prefix: records}, problems)."""
    plans = {s.prefix: s for s in splits or ()}
    label_range = checks.label_range(custom)
    jobs = (reread.VerifyJob(prefix, path, fmt.schema, label_range,
                             reread.expected(plans[prefix], k) if prefix in plans
                             else None, storage.is_remote(path),
                             plans[prefix].shard_items(k)
                             if source_bytes and prefix in plans else None)
            for prefix, k, path in shards)
    tally = checks.Tally(prefix for _, prefix, _ in fmt.layout)
    progress = Progress(len(shards), "verifying", stream=log, unit="shards")
    problems = reread.verify_shards(jobs, runner, tally, progress, keep_going=True)
    problems += contract.check_label_map(tally.pairs, custom=custom,
                                         exact=fmt.exact_labels and not custom)
    return tally.counts, problems


def check_reader_files(fmt, out_dir, shards, counts, runner):
    """The DALI index files and TFDS metadata, where a conversion wrote them:
    [(summary line, problems)]."""
    found = []
    dali_problems, n_dali = [], 0
    for _, prefix, _ in fmt.layout:
        paths = [path for p, _, path in shards if p == prefix]
        problems, present = dali.check_dir(out_dir, prefix, paths, runner)
        if present:
            dali_problems += problems
            n_dali += len(paths)
    if n_dali or dali_problems:
        found.append(("DALI index files (%s): %s" % (
            os.path.join(out_dir, dali.DIR_NAME),
            "%d problems" % len(dali_problems) if dali_problems
            else "all %d match their shards" % n_dali), dali_problems))
    problems, present = tfds_meta.check(out_dir, [(p, n) for _, p, n in fmt.layout],
                                        counts)
    if present:
        found.append(("TFDS metadata (%s): %s" % (
            os.path.join(out_dir, tfds_meta.INFO_FILE),
            "%d problems" % len(problems) if problems else "matches the shards"),
            problems))
    return found
