"""The one conversion every format goes through: plan the splits from the listings,
write their shards, then verify them against the plan."""

import sys
from typing import Callable, NamedTuple

from ilsvrc import dali, verify, write


class Format(NamedTuple):
    """An output format: what its records hold and how its shards are laid out."""
    name: str
    schema: dict          # {feature key: kind} of every record
    label_range: tuple    # (lowest, highest) image/class/label
    layout: tuple         # ((subdirectory of the output, file prefix, shards), ...)
    plan: Callable        # plan(listings, out_dir, log, **options) -> (splits, labels)


def convert(fmt, listings, out_dir, runner, check="header", do_verify=True,
            log=sys.stderr, dali_index=False, **options):
    """Plan `listings` (train, validation) in format `fmt`, write every shard not yet
    done (with dali_index, each with its DALI index file), and (unless told not to)
    verify each against the plan.  `options` go to the format's planner.  Returns
    (splits, write.write_splits' totals)."""
    splits, num_labels = fmt.plan(listings, out_dir, log, **options)
    index = dali.Index(out_dir, dali_index)
    stats = write.write_splits(splits, runner, check, label="converting", index=index)
    if do_verify:
        counts = verify.verify_splits(splits, fmt.schema, (1, num_labels), runner)
        log.write("verified: %s records, every image once with its label\n"
                  % " and ".join("%d %s" % (counts[s.prefix], s.prefix) for s in splits))
        if dali_index:
            problems = dali.check(((s.path(k), index.path(s, k)) for s in splits
                                   for k in range(s.num_shards)), runner)
            if problems:
                raise verify.VerifyError(problems[0])
            log.write("verified: the DALI index files match the shards\n")
    return splits, stats
