"""The one conversion every format goes through: plan the splits from the listings,
write their shards, each verified by the worker that wrote it against the plan, and
check the labels read back against the ILSVRC2012 label contract."""

import sys
from typing import Callable, NamedTuple

from ilsvrc import pool
from ilsvrc.errors import UserError
from ilsvrc.formats import report
from ilsvrc.readerfiles import dali
from ilsvrc.records import checks
from ilsvrc.sources import spool
from ilsvrc.verify import reread
from ilsvrc.write import destination, driver, worker


def worker_pool(workers):
    """The worker pool a conversion runs on: each worker loads the write stage as it
    starts (write.worker.warm_up), while the main process indexes and plans."""
    return pool.Pool(workers, warm_up=worker.warm_up)


class Format(NamedTuple):
    """An output format: what its records hold and how its shards are laid out."""
    name: str
    schema: dict          # {feature key: kind} of every record
    layout: tuple         # ((subdirectory of the output, file prefix, shards), ...)
    plan: Callable        # plan(listings, out_dir, log, **options) -> (splits, labels)
    exact_labels: bool = False   # labels are exactly the ILSVRC2012 ones (slim)


# How the records were checked, by where the shards are ("disk" or "the bucket").
HOW = {
    "disk": ("each shard read back by the worker that wrote it, before it was kept: "
             "framing, CRC32C, Example, every feature and the image bytes against the "
             "plan; labels against the ILSVRC2012 contract"),
    "the bucket": ("each shard read back by the worker that wrote it from its upload "
                   "buffer, before it was uploaded: framing, CRC32C, Example, every "
                   "feature and the image bytes against the plan; the object's size "
                   "and the CRC32C Cloud Storage reports against the bytes written; "
                   "labels against the ILSVRC2012 contract"),
}


def convert(fmt, listings, out_dir, runner, check="header", do_verify=True,
            log=sys.stderr, task=None, dali_index=False, **options):
    """Plan `listings` (train, validation) in format `fmt`, write every shard not yet
    done (in task mode, of `task`'s share: a tasks.Task; with dali_index, each with
    its DALI index file), and (unless told not to) verify each against the plan: the
    worker that writes a shard checks it from the bytes just written (shardcheck);
    shards kept from an earlier run are re-read from disk.  The (synset, label) pairs
    read back must then satisfy the label contract (ilsvrc.contract.check_label_map).
    `options` go to the format's planner.  Returns (splits, driver.write_splits'
    totals)."""
    report.mark("index")
    dest = destination.at(out_dir)
    _refuse_extras(dest, out_dir, dali_index)
    splits, num_labels = fmt.plan(listings, out_dir, log, **options)
    report.mark("plan")
    custom = options.get("allow_custom", False)
    label_range = checks.label_range(custom, num_labels)
    index = dali.Index(out_dir, dali_index)
    stats = driver.write_splits(splits, runner, check, label="converting", task=task,
                                verify=(fmt.schema, label_range) if do_verify else None,
                                index=index, before_write=_refill(listings, log))
    report.mark("write")
    if do_verify:
        counts = _verify(fmt, splits, stats, dest, runner, label_range, task, custom)
        _say_verified(splits, stats, counts, dest, task, log)
        if dali_index:
            _verify_index(splits, stats, index, runner, log)
    elif stats["recheck"]:       # changed inputs: checked even with --no-verify
        reread.verify_shards(_kept_jobs(fmt, stats, dest, label_range, True), runner,
                             checks.Tally())
    _record_inputs(splits, stats)
    if task is None:       # every shard is there: a spooled copy's images can go
        spool.drain(listings, log)
    report.after_conversion(fmt, out_dir, splits, stats, HOW[dest.where] if do_verify
                            else None, task, log, listings, options)
    return splits, stats


def _refill(listings, log):
    """The driver's before_write for a spooled copy whose images a complete run
    removed: the files of the copy that the shards to write need are read again."""
    if not any(part.get("drained") for lst in listings for part in lst.spool_parts):
        return None

    def refill(todo):
        needed = {id(item.container): item.container
                  for split, k in todo for item in split.shard_items(k)}
        spool.refill(needed.values(), log)
    return refill


def _kept_jobs(fmt, stats, dest, label_range, only_recheck=False):
    """VerifyJobs of the shards kept from an earlier run: against the plan, and
    those written from other inputs than the source has now (stats["recheck"])
    record by record against what the source gives now."""
    recheck = {(split.prefix, k) for split, k in stats["recheck"]}
    kept = stats["recheck"] if only_recheck else stats["kept"]
    plain = [(s, k) for s, k in kept if (s.prefix, k) not in recheck]
    changed = [(s, k) for s, k in kept if (s.prefix, k) in recheck]
    yield from reread.plan_jobs(plain, fmt.schema, label_range, dest.in_bucket)
    yield from reread.plan_jobs(changed, fmt.schema, label_range, dest.in_bucket, True)


def _record_inputs(splits, stats):
    """Every kept shard written from other inputs checked out: their shards now
    match the inputs as they are."""
    for split in {s.prefix: s for s, _ in stats["recheck"]}.values():
        destination.at(split.out_dir).record(split, stats["inputs"][split.prefix])


def _verify(fmt, splits, stats, dest, runner, label_range, task, custom):
    """Re-read the shards kept from an earlier run; check the counts (of a whole
    run) and the label contract over everything read back; {prefix: records}."""
    tally = checks.Tally()
    for prefix, n in stats["checked"].items():
        tally.add(prefix, n, {})
    checks.merge_labels(tally.pairs, stats["pairs"])
    reread.verify_shards(_kept_jobs(fmt, stats, dest, label_range), runner, tally)
    counts = tally.counts
    if task is None:
        for split in splits:
            if counts[split.prefix] != split.count:
                raise UserError("%s: %d records in %s, planned %d"
                                % (split.prefix, counts[split.prefix], split.out_dir,
                                   split.count))
    checks.check_contract(tally.pairs, custom, fmt.exact_labels and not custom,
                          " and ".join(sorted({s.out_dir for s in splits})))
    return counts


def _say_verified(splits, stats, counts, dest, task, log):
    how = HOW[dest.where]
    if stats["kept"]:
        how += "; %d shards kept from an earlier run re-read from %s" % (
            len(stats["kept"]), dest.where)
    mine = "" if task is None else " of this task's %d shards" % len(stats["owned"])
    log.write("verified: %s records%s, every image once with its label (%s; "
              "./verify.sh re-reads them all from %s)\n"
              % (" and ".join("%d %s" % (counts[s.prefix], s.prefix) for s in splits),
                 mine, how, dest.where))


def _verify_index(splits, stats, index, runner, log):
    owned = set(stats["owned"])
    problems = dali.check(((s.path(k), index.path(s, k)) for s in splits
                           for k in range(s.num_shards) if (s.prefix, k) in owned),
                          runner)
    if problems:
        raise UserError(problems[0])
    log.write("verified: the DALI index files match the shards\n")


def refuse_remote_extras(out_dir, dali_index=False, tfds_metadata=False):
    """DALI index files and TFDS metadata are local files next to local shards: with
    a gs:// output, say so before any work instead of writing half of it."""
    _refuse_extras(destination.at(out_dir), out_dir, dali_index, tfds_metadata)


def _refuse_extras(dest, out_dir, dali_index=False, tfds_metadata=False):
    if not dest.in_bucket:
        return
    asked = [flag for flag, on in (("--dali-index", dali_index),
                                   ("--tfds-metadata", tfds_metadata)) if on]
    if asked:
        raise UserError("%s: written next to local shards only, not to a gs:// output "
                        "(%s); drop %s, or convert to a local directory and copy it "
                        "(gcloud storage cp -r)" % (" and ".join(asked), out_dir,
                                                      " and ".join(asked)))
