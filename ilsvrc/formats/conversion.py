"""The one conversion every format goes through: plan the splits from the listings,
write their shards, each verified by the worker that wrote it against the plan, and
check the labels read back against the ILSVRC2012 label contract."""

import sys
from typing import Callable, NamedTuple

from ilsvrc import storage
from ilsvrc.readerfiles import dali
from ilsvrc.verify import reread
from ilsvrc.write import driver
from ilsvrc.errors import UserError


class Format(NamedTuple):
    """An output format: what its records hold and how its shards are laid out."""
    name: str
    schema: dict          # {feature key: kind} of every record
    label_range: tuple    # (lowest, highest) image/class/label
    layout: tuple         # ((subdirectory of the output, file prefix, shards), ...)
    plan: Callable        # plan(listings, out_dir, log, **options) -> (splits, labels)
    exact_labels: bool = False   # labels are exactly the ILSVRC2012 ones (slim)


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
    refuse_remote_extras(out_dir, dali_index)
    splits, num_labels = fmt.plan(listings, out_dir, log, **options)
    custom = options.get("allow_custom", False)
    label_range = reread.label_range(num_labels, custom)
    index = dali.Index(out_dir, dali_index)
    stats = driver.write_splits(splits, runner, check, label="converting", task=task,
                               verify=(fmt.schema, label_range) if do_verify else None,
                               index=index)
    if do_verify:
        counts = dict(stats["checked"])
        pairs = stats["pairs"]
        kept = stats["kept"]
        for prefix, n in reread.verify_shards(kept, fmt.schema, label_range, runner,
                                              pairs).items():
            counts[prefix] += n
        if task is None:
            for split in splits:
                if counts[split.prefix] != split.count:
                    raise UserError("%s: %d records in %s, planned %d"
                                    % (split.prefix, counts[split.prefix], split.out_dir,
                                       split.count))
        reread.check_contract(pairs, custom, fmt.exact_labels and not custom,
                              " and ".join(sorted({s.out_dir for s in splits})))
        remote = storage.is_remote(out_dir)
        where = "the bucket" if remote else "disk"
        if remote:
            how = ("each shard read back by the worker that wrote it from its upload "
                   "buffer, before it was uploaded: framing, CRC32C, Example, every "
                   "feature and the image bytes against the plan; the object's size "
                   "and the CRC32C Cloud Storage reports against the bytes written; "
                   "labels against the ILSVRC2012 contract")
        else:
            how = ("each shard read back by the worker that wrote it, before it was "
                   "kept: framing, CRC32C, Example, every feature and the image bytes "
                   "against the plan; labels against the ILSVRC2012 contract")
        if kept:
            how += "; %d shards kept from an earlier run re-read from %s" % (len(kept),
                                                                           where)
        mine = "" if task is None else " of this task's %d shards" % len(stats["owned"])
        log.write("verified: %s records%s, every image once with its label (%s; "
                  "./verify.sh re-reads them all from %s)\n"
                  % (" and ".join("%d %s" % (counts[s.prefix], s.prefix) for s in splits),
                     mine, how, where))
        if dali_index:
            owned = set(stats["owned"])
            problems = dali.check(((s.path(k), index.path(s, k)) for s in splits
                                   for k in range(s.num_shards) if (s.prefix, k) in owned),
                                  runner)
            if problems:
                raise UserError(problems[0])
            log.write("verified: the DALI index files match the shards\n")
    return splits, stats


def refuse_remote_extras(out_dir, dali_index=False, tfds_metadata=False):
    """DALI index files and TFDS metadata are local files next to local shards: with
    a gs:// output, say so before any work instead of writing half of it."""
    if not storage.is_remote(out_dir):
        return
    asked = [flag for flag, on in (("--dali-index", dali_index),
                                   ("--tfds-metadata", tfds_metadata)) if on]
    if asked:
        raise UserError("%s: written next to local shards only, not to a gs:// output "
                        "(%s); drop %s, or convert to a local directory and copy it "
                        "(gcloud storage cp -r)" % (" and ".join(asked), out_dir,
                                                      " and ".join(asked)))
