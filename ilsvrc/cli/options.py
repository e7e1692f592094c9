"""The engine options, defined once for the absl and the argparse front ends, worker
counts, and the argument handling of the small positional-argument scripts."""

import os
import sys
from typing import NamedTuple

from ilsvrc import contract, pool, tasks
from ilsvrc.errors import UsageError
from ilsvrc.records import image
from ilsvrc.sources import cached


class Option(NamedTuple):
    """One engine option, as both kinds of front end spell it."""
    absl: str         # absl flag name (official/imagenet_to_gcs.py, slim/datasets/*.py)
    argparse: tuple   # argparse flags (build.sh, verify.sh, the slim drivers)
    kind: object      # int, bool, or a tuple of choices
    default: object
    help: str
    conversion_only: bool = False   # not offered by commands that only read shards


OPTIONS = (
    Option("num_workers", ("-j", "--workers"), int, None,
           "worker processes (default: one per CPU core, here %d; 0 = all in this "
           "process). The output does not depend on it." % pool.default_workers()),
    Option("image_check", ("--check",), image.CHECKS, "header",
           "image check: 'header' reads size and structure from the JPEG header "
           "(default, fast); 'decode' decodes every image with TensorFlow, as upstream "
           "does", conversion_only=True),
    Option("verify", ("--no-verify",), bool, True,
           "check every shard against the plan: the worker that wrote it reads it back "
           "before it is kept (./verify.sh re-reads everything from disk)",
           conversion_only=True),
    Option(contract.CUSTOM_FLAG[2:], (contract.CUSTOM_ARG,), bool, False,
           "accept synsets outside the 1000 of ILSVRC2012 (a custom class set); the "
           "label range used is printed. Without it such a synset is an error."),
)


def define_flags(flags):
    """Define the engine options (--num_workers, --image_check, --verify,
    --allow_custom_classes) on absl's `flags` module."""
    for opt in OPTIONS:
        if opt.kind is int:
            flags.DEFINE_integer(opt.absl, opt.default, opt.help)
        elif opt.kind is bool:
            flags.DEFINE_boolean(opt.absl, opt.default, opt.help)
        else:
            flags.DEFINE_enum(opt.absl, opt.default, list(opt.kind), opt.help)


def add_run_options(parser, check=True):
    """The same options for the argparse front ends: -j/--workers,
    --allow-custom-classes, and unless check is False, --check and --no-verify."""
    for opt in OPTIONS:
        if opt.conversion_only and not check:
            continue
        if opt.kind is int:
            parser.add_argument(*opt.argparse, type=int, default=opt.default, metavar="N",
                                help=opt.help)
        elif opt.kind is bool and opt.default:   # the argparse flag turns it off
            parser.add_argument(*opt.argparse, action="store_true",
                                help="do not " + opt.help)
        elif opt.kind is bool:                   # off by default: the flag turns it on
            parser.add_argument(*opt.argparse, action="store_true", help=opt.help)
        else:
            parser.add_argument(*opt.argparse, choices=opt.kind, default=opt.default,
                                help=opt.help)


def refuse_bucket(path, flag):
    """A gs:// path given where a local directory is expected: refused in one line
    (never a local 'gs:' directory).  The one place that knows it."""
    if path and path.startswith("gs://"):
        raise UsageError("%s %s: must be a local directory (a bucket goes in "
                         "--gcs_output_path)" % (flag, path))
    return path


def workers(num_workers, flag="--num_workers"):
    """The number of worker processes for a --num_workers value (None: one per core)."""
    if num_workers is not None and num_workers < 0:
        raise UsageError("%s must be 0 or more" % flag)
    return pool.default_workers() if num_workers is None else num_workers


def positional(args, usage, doc, least, most):
    """-h/--help prints usage and `doc` (minus its first paragraph) and returns 0;
    a count outside least..most (most None: no limit) prints usage on stderr and
    returns upstream's 255.  None: go on."""
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(usage + doc.split("\n\n", 1)[-1])
        return 0
    if len(args) < least or (most is not None and len(args) > most):
        sys.stderr.write(usage)
        return 255  # upstream exits with status -1
    return None


# --------------------------------------------------------------------------- task mode

TASK_HELP = ("task mode (more than one machine, see docs/multi-machine.md): this run "
             "writes task I's share of the shards of N tasks; without these flags the "
             "task comes from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX (+ "
             "ILSVRC_TASK_COUNT), BATCH_TASK_INDEX or AWS_BATCH_JOB_ARRAY_INDEX (+ "
             "ILSVRC_TASK_COUNT) when set")


def add_task_options(parser, index_only=True):
    """--task-index/--task-count, --index FILE and (for converters) --index-only."""
    parser.add_argument("--task-index", "--task_index", type=int, default=None,
                        metavar="I", help=TASK_HELP + " (I counts from 0)")
    parser.add_argument("--task-count", "--task_count", type=int, default=None,
                        metavar="N", help="number of tasks (0 or 1: an ordinary run)")
    parser.add_argument("--index", metavar="FILE", default=None, help="source index "
                        "file to read (default: OUT/ilsvrc-source.index when it "
                        "exists; without one the source is walked)")
    if index_only:
        parser.add_argument("--index-only", action="store_true", help="only walk the "
                            "source and write its index file (to --index FILE, default "
                            "OUT/ilsvrc-source.index) for the tasks to read, then exit")


def define_task_flags(flags):
    """absl twins of add_task_options: --task_index, --task_count, --index,
    --index_only."""
    flags.DEFINE_integer("task_index", None, TASK_HELP + " (from 0).")
    flags.DEFINE_integer("task_count", None, "Number of tasks (0 or 1: an ordinary run).")
    flags.DEFINE_string("index", None, "Source index file to read (default: "
                        "ilsvrc-source.index in the output directory when it exists).")
    flags.DEFINE_boolean("index_only", False, "Only write the source index file (to "
                         "--index, default ilsvrc-source.index in the output "
                         "directory), then exit.")


def resolve_task(task_index, task_count, prog, log=None, environ=None):
    """The tasks.Task of this run (None: ordinary run); says so on `log`."""
    task = tasks.detect(task_index, task_count, os.environ if environ is None else environ)
    if task is not None:
        (log or sys.stderr).write("%s: task %d of %d (from %s); its shards are listed "
                                  "once the plan is made\n"
                                  % (prog, task.index, task.count, task.how))
    return task


# where the source index is read or written (--index): the policy's own rule, named
# here for the front ends that take --index (./verify.sh --source)
index_path = cached.index_path


def define_reader_flags(flags):
    """Define --dali_index and --tfds_metadata on absl's `flags` module."""
    flags.DEFINE_boolean("dali_index", False, "Also write a DALI index file per shard "
                         "(OUT/dali-index/<split>/<shard>.idx) for "
                         "nvidia.dali fn.readers.tfrecord; see docs/readers.md.")
    flags.DEFINE_boolean("tfds_metadata", False, "Also write TFDS metadata "
                         "(dataset_info.json, features.json) so that "
                         "tfds.builder_from_directory(OUT) reads the shards.")


def add_reader_options(parser):
    """--dali-index and --tfds-metadata for the argparse front ends."""
    parser.add_argument("--dali-index", "--dali_index", action="store_true",
                        help="also write a DALI index file per shard "
                        "(OUT/dali-index/<split>/<shard>.idx) for nvidia.dali's "
                        "fn.readers.tfrecord; a rerun adds those missing")
    parser.add_argument("--tfds-metadata", "--tfds_metadata", action="store_true",
                        help="also write TFDS metadata (dataset_info.json, "
                        "features.json) so that tfds.builder_from_directory(OUT) "
                        "reads the shards")
