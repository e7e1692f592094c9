"""The one conversion every format goes through: plan the splits from the listings,
write their shards, each verified against the plan by the worker that wrote it."""

import sys
from typing import Callable, NamedTuple

from ilsvrc import verify, write
from ilsvrc.errors import UserError


class Format(NamedTuple):
    """An output format: what its records hold and how its shards are laid out."""
    name: str
    schema: dict          # {feature key: kind} of every record
    label_range: tuple    # (lowest, highest) image/class/label
    layout: tuple         # ((subdirectory of the output, file prefix, shards), ...)
    plan: Callable        # plan(listings, out_dir, log, **options) -> (splits, labels)


def convert(fmt, listings, out_dir, runner, check="header", do_verify=True,
            log=sys.stderr, **options):
    """Plan `listings` (train, validation) in format `fmt`, write every shard not yet
    done, and (unless told not to) verify each against the plan: the worker that
    writes a shard checks it from the bytes just written (shardcheck); shards kept
    from an earlier run are re-read from disk.  `options` go to the format's planner.
    Returns (splits, write.write_splits' totals)."""
    splits, num_labels = fmt.plan(listings, out_dir, log, **options)
    label_range = (1, num_labels)
    stats = write.write_splits(splits, runner, check, label="converting",
                               verify=(fmt.schema, label_range) if do_verify else None)
    if do_verify:
        counts = dict(stats["checked"])
        kept = stats["kept"]
        for prefix, n in verify.verify_shards(kept, fmt.schema, label_range,
                                              runner).items():
            counts[prefix] += n
        for split in splits:
            if counts[split.prefix] != split.count:
                raise UserError("%s: %d records in %s, planned %d"
                                % (split.prefix, counts[split.prefix], split.out_dir,
                                   split.count))
        how = ("each shard read back by the worker that wrote it, before it was kept: "
               "framing, CRC32C, Example, every feature and the image bytes against "
               "the plan")
        if kept:
            how += "; %d shards kept from an earlier run re-read from disk" % len(kept)
        log.write("verified: %s records, every image once with its label (%s; "
                  "./verify.sh re-reads them all from disk)\n"
                  % (" and ".join("%d %s" % (counts[s.prefix], s.prefix) for s in splits),
                     how))
    return splits, stats
