"""The one conversion every format goes through: plan the splits from the listings,
write their shards, then verify them against the plan and the label contract."""

import sys
from typing import Callable, NamedTuple

from ilsvrc import verify, write


class Format(NamedTuple):
    """An output format: what its records hold and how its shards are laid out."""
    name: str
    schema: dict          # {feature key: kind} of every record
    label_range: tuple    # (lowest, highest) image/class/label
    layout: tuple         # ((subdirectory of the output, file prefix, shards), ...)
    plan: Callable        # plan(listings, out_dir, log, **options) -> (splits, labels)
    exact_labels: bool = False   # labels are exactly the ILSVRC2012 ones (slim)


def convert(fmt, listings, out_dir, runner, check="header", do_verify=True,
            log=sys.stderr, task=None, **options):
    """Plan `listings` (train, validation) in format `fmt`, write every shard not yet
    done (in task mode, of `task`'s share: a tasks.Task), and (unless told not to)
    verify each against the plan.  `options` go to the format's planner.  Returns
    (splits, write.write_splits' totals)."""
    splits, num_labels = fmt.plan(listings, out_dir, log, **options)
    stats = write.write_splits(splits, runner, check, label="converting", task=task)
    if do_verify:
        # the plan and the ILSVRC2012 label contract (ilsvrc.contract.check_label_map)
        custom = options.get("allow_custom", False)
        only = set(stats["owned"]) if task is not None else None
        pairs = {}
        counts = verify.verify_splits(splits, fmt.schema,
                                      verify.label_range(num_labels, custom), runner,
                                      pairs=pairs, only=only)
        verify.check_contract(pairs, custom, fmt.exact_labels and not custom,
                              " and ".join(sorted({s.out_dir for s in splits})))
        log.write("verified: %s records%s, every image once with its label\n"
                  % (" and ".join("%d %s" % (counts[s.prefix], s.prefix) for s in splits),
                     "" if only is None else " of this task's %d shards" % len(only)))
    return splits, stats
