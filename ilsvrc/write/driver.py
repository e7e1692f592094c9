"""The write stage's driver: every shard of a plan not yet done (of this task's share
in task mode), written by worker processes that each own whole shards, biggest first,
and made final as they finish.

Each split's destination (write.destination: a local directory or a gs:// prefix)
says which shards an earlier run of the same plan finished (those are kept, see
resume and upload.remote_done); local directories are held under their run lock
(lock.py) while the run writes.  Workers write, check and close each shard
(write.worker); the main process makes it final (write.finisher).
"""

import sys
import time

from ilsvrc import tasks
from ilsvrc.errors import UserError
from ilsvrc.progress import Progress
from ilsvrc.readerfiles import dali
from ilsvrc.records import checks, image
from ilsvrc.write import destination, lock, resume, worker
from ilsvrc.write.finisher import Finisher


def write_splits(splits, runner, check="header", label="writing", task=None,
                 verify=None, index=None, before_write=None):
    """Write every shard of `splits` (of `task`'s share in task mode) that is not
    already done; return totals.

    verify: None, or (schema, label_range) to have each worker check every shard it
    writes (shardcheck).  The totals then hold `checked` ({prefix: records checked})
    and `pairs` ({synset: {labels}} read back); always `kept` (the (split, k) of
    shards already complete, not rewritten) and `owned` (the [(prefix, k)] of this
    run).  `index`: a dali.Index (DALI index files with the shards), or None.
    before_write: None, or called with the [(split, k)] to write (when there are
    any) before the first is written: a source that must make its images readable
    first (a spooled copy whose images were removed).
    """
    if check not in image.CHECKS:
        raise UserError("unknown image check '%s' (use one of: %s)"
                        % (check, ", ".join(image.CHECKS)))
    surveyed = {s.prefix: resume.survey(s, check) for s in splits}
    digests = {prefix: v[0] for prefix, v in surveyed.items()}
    inputs = {prefix: v[1] for prefix, v in surveyed.items()}
    mine = tasks.owned_shards(splits, task, sys.stderr)
    note = "task %d of %d" % (task.index, task.count) if task else "an ordinary run"
    dests = {s.prefix: destination.at(s.out_dir) for s in splits}
    if index is not None and index.enabled and any(d.in_bucket for d in dests.values()):
        raise UserError("DALI index files are written next to local shards only; drop "
                        "--dali-index for a gs:// output (or write locally)")
    locked = [s.out_dir for s in splits if dests[s.prefix].takes_lock]
    with lock.Claim(locked, task is not None, note) as claim:
        done = {s.prefix: _prepare(s, dests[s.prefix], digests[s.prefix], claim, index,
                                   runner, label) for s in splits}
        claim.ready()
        todo = [(split, k) for split, k in mine if k not in done[split.prefix]]
        kept = [(split, k) for split, k in mine if k in done[split.prefix]]
        recheck = _stale(splits, kept, done, dests, inputs, label)
        if (todo or recheck) and before_write is not None:
            before_write(todo + recheck)
        stats = _write(splits, todo, kept, runner, check, label, verify, index,
                       dests, (digests, inputs))
    stats["owned"] = [(s.prefix, k) for s, k in mine]
    stats["recheck"], stats["inputs"] = recheck, inputs
    return stats


def _stale(splits, kept, done, dests, inputs, label):
    """The kept shards [(split, k)] written from other inputs than the source has
    now: they are checked against it byte for byte before they are kept
    (formats.conversion), never kept silently."""
    old = {}
    for s in splits:
        ks, changed = dests[s.prefix].stale(s, done[s.prefix], inputs[s.prefix])
        if ks:
            old[s.prefix] = ks
            sys.stderr.write("%s: %s since the finished %s shards in %s were written: "
                             "each is checked against the source, record by record\n"
                             % (label, changed, s.prefix, s.out_dir))
    return [(s, k) for s, k in kept if k in old.get(s.prefix, ())]


def _prepare(split, dest, digest, claim, index, runner, label):
    """The k's of `split` already done; a local split's missing DALI index files of
    finished shards are written now."""
    alone = claim.alone.get(split.out_dir, True)
    done = dest.prepare(split, digest, alone)
    if not dest.in_bucket and index is not None:   # dead runs' partial index files
        lock.remove_orphans(dali.index_dir(index.root, split.prefix), split.prefix,
                            owners=split.out_dir)
    if not dest.in_bucket and index is not None and \
            index.prepare(split, done, runner, alone):
        sys.stderr.write("%s: wrote the missing DALI index files of finished %s "
                         "shards\n" % (label, split.prefix))
    return done


def _jobs(todo, check, verify, index, dests, surveyed):
    """The WriteJobs of `todo` [(split, k)] (lazily), and {shard path: its DALI index
    path or None}; surveyed: ({prefix: plan digest}, {prefix: resume.Inputs})."""
    digests, inputs = surveyed
    with_index = index is not None and index.enabled
    index_of = {split.path(k): index.path(split, k) if with_index else None
                for split, k in todo}
    jobs = (worker.WriteJob(split.path(k), split.shard_items(k), check,
                            dests[split.prefix].target(split.path(k),
                                                       digests[split.prefix],
                                                       index_of[split.path(k)],
                                                       inputs[split.prefix]),
                            verify)
            for split, k in todo)
    return jobs, index_of


# Small shards go to a worker together, up to this many images in all (pool.Pool.run),
# each shard counting one more (so that empty ones spread too): each job costs
# ~0.2 ms of CPU in the pool's round trip, as much as half an image.  A shard of the
# full release (~1,250 or 390 images) always travels alone.
BATCH_IMAGES = 128


def _images(job):
    return len(job.items) + 1


def _write(splits, todo, kept, runner, check, label, verify, index, dests, surveyed):
    """Shards go out biggest first (most images, then plan order), those a split
    names `first` before all: output does not depend on the order, and the last
    shards to finish are then the small ones."""
    order = {id(split): i for i, split in enumerate(splits)}
    todo = sorted(todo, key=lambda t: (t[1] not in getattr(t[0], "first", ()),
                                       t[0].ranges[t[1]][0] - t[0].ranges[t[1]][1],
                                       order[id(t[0])], t[1]))
    total = sum(split.ranges[k][1] - split.ranges[k][0] for split, k in todo)
    if kept:
        sys.stderr.write("%s: %d shards already complete from an earlier run, %d to "
                         "write\n" % (label, len(kept), len(todo)))
    progress = Progress(total, label, second=(len(todo), "shards"))
    jobs, index_of = _jobs(todo, check, verify, index, dests, surveyed)
    prefix_of = {split.path(k): split.prefix for split, k in todo}
    tally = checks.Tally(split.prefix for split in splits)
    written = 0
    finisher = Finisher()
    try:
        for job, result in runner.run(worker.write_shard, jobs, weight=_images,
                                      per_batch=BATCH_IMAGES):
            prefix = prefix_of[job.path]
            dests[prefix].finish(finisher, job.path, index_of[job.path])
            written += result.bytes_written
            if result.checked is not None:
                tally.add(prefix, result.checked, result.pairs)
            progress.update(result.records, result.bytes_read, second=1)
    except BaseException:
        finisher.close(check=False)   # shards finished so far are kept
        raise
    progress.finish()
    with progress.waiting("the last shards are being flushed to disk (fsync, rename)"):
        finisher.close()
    return {"shards": len(todo), "images": total, "bytes_written": written,
            "seconds": time.monotonic() - progress.start,
            "checked": tally.counts if verify is not None else None,
            "pairs": tally.pairs if verify is not None else None, "kept": kept}
