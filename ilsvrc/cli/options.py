"""The engine options, defined once (one table) for the absl and the argparse front
ends -- run, task-mode and reader-file options alike --, worker counts, and the
argument handling of the small positional-argument scripts."""

import os
import sys
from typing import NamedTuple

from ilsvrc import contract, pool, tasks
from ilsvrc.errors import UsageError
from ilsvrc.records import image
from ilsvrc.sources import hfcopy


class Option(NamedTuple):
    """One engine option, as both kinds of front end spell it."""
    absl: str         # absl flag name (official/imagenet_to_gcs.py, slim/datasets/*.py)
    argparse: tuple   # argparse flags (build.sh, verify.sh, the slim drivers)
    kind: object      # int, str, bool, or a tuple of choices
    default: object
    help: str
    group: str = "run"   # run, check (conversions only), task, index_only, reader
    metavar: str = None


TASK_HELP = ("task mode (more than one machine, see docs/multi-machine.md): this run "
             "writes task I's share of the shards of N tasks; without these flags the "
             "task comes from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX (+ "
             "ILSVRC_TASK_COUNT), BATCH_TASK_INDEX or AWS_BATCH_JOB_ARRAY_INDEX (+ "
             "ILSVRC_TASK_COUNT) when set")

OPTIONS = (
    Option("num_workers", ("-j", "--workers"), int, None,
           "worker processes (default: one per CPU core, here %d; 0 = all in this "
           "process). The output does not depend on it." % pool.default_workers(),
           metavar="N"),
    Option("image_check", ("--check",), image.CHECKS, "header",
           "image check: 'header' reads size and structure from the JPEG header "
           "(default, fast); 'decode' decodes every image with TensorFlow, as upstream "
           "does", group="check"),
    Option("verify", ("--no-verify",), bool, True,
           "check every shard against the plan: the worker that wrote it reads it back "
           "before it is kept (./verify.sh re-reads everything from disk)",
           group="check"),
    Option(contract.CUSTOM_FLAG[2:], (contract.CUSTOM_ARG,), bool, False,
           "accept synsets outside the 1000 of ILSVRC2012 (a custom class set); the "
           "label range used is printed. Without it such a synset is an error."),
    Option("task_index", ("--task-index", "--task_index"), int, None,
           TASK_HELP + " (I counts from 0)", group="task", metavar="I"),
    Option("task_count", ("--task-count", "--task_count"), int, None,
           "number of tasks (0 or 1: an ordinary run)", group="task", metavar="N"),
    Option("index", ("--index",), str, None,
           "source index file to read; a FILE named here must exist (write it with "
           "--index-only) (default: ilsvrc-source.index in the output directory when it "
           "exists; without one the source is walked)",
           group="task", metavar="FILE"),
    Option("index_only", ("--index-only", "--index_only"), bool, False,
           "only walk the source and write its index file (to --index FILE, default "
           "ilsvrc-source.index in the output directory) for the tasks to read, then "
           "exit; a Hugging Face copy is unpacked into its spool (ilsvrc-spool beside "
           "the index) instead", group="index_only"),
    Option("dali_index", ("--dali-index", "--dali_index"), bool, False,
           "also write a DALI index file per shard (OUT/dali-index/<split>/<shard>.idx) "
           "for nvidia.dali's fn.readers.tfrecord (docs/readers.md); a rerun adds those "
           "missing", group="reader"),
    Option("tfds_metadata", ("--tfds-metadata", "--tfds_metadata"), bool, False,
           "also write TFDS metadata (dataset_info.json, features.json) so that "
           "tfds.builder_from_directory(OUT) reads the shards (in task mode: the task "
           "that finishes last writes it)", group="reader"),
)


def _define(flags, groups):
    for opt in OPTIONS:
        if opt.group not in groups:
            continue
        if opt.kind is int:
            flags.DEFINE_integer(opt.absl, opt.default, opt.help)
        elif opt.kind is str:
            flags.DEFINE_string(opt.absl, opt.default, opt.help)
        elif opt.kind is bool:
            flags.DEFINE_boolean(opt.absl, opt.default, opt.help)
        else:
            flags.DEFINE_enum(opt.absl, opt.default, list(opt.kind), opt.help)


def _add(parser, groups):
    for opt in OPTIONS:
        if opt.group not in groups:
            continue
        if opt.kind in (int, str):
            parser.add_argument(*opt.argparse, type=opt.kind, default=opt.default,
                                metavar=opt.metavar, help=opt.help)
        elif opt.kind is bool and opt.default:   # the argparse flag turns it off
            parser.add_argument(*opt.argparse, action="store_true",
                                help="do not " + opt.help)
        elif opt.kind is bool:                   # off by default: the flag turns it on
            parser.add_argument(*opt.argparse, action="store_true", help=opt.help)
        else:
            parser.add_argument(*opt.argparse, choices=opt.kind, default=opt.default,
                                help=opt.help)


def define_flags(flags):
    """The engine options on absl's `flags` module: --num_workers, --image_check,
    --verify, --allow_custom_classes."""
    _define(flags, ("run", "check"))


def define_task_flags(flags):
    """--task_index, --task_count, --index, --index_only on absl's `flags` module."""
    _define(flags, ("task", "index_only"))


def define_reader_flags(flags):
    """--dali_index and --tfds_metadata on absl's `flags` module."""
    _define(flags, ("reader",))


def add_run_options(parser, check=True):
    """The same options for the argparse front ends: -j/--workers,
    --allow-custom-classes, and unless check is False, --check and --no-verify."""
    _add(parser, ("run", "check") if check else ("run",))


def add_task_options(parser, index_only=True):
    """--task-index/--task-count, --index FILE and (for converters) --index-only."""
    _add(parser, ("task", "index_only") if index_only else ("task",))


def add_reader_options(parser):
    """--dali-index and --tfds-metadata for the argparse front ends."""
    _add(parser, ("reader",))


def refuse_bucket(path, flag):
    """A gs:// path given where a local directory is expected: refused in one line
    (never a local 'gs:' directory).  The one place that knows it."""
    if path and path.startswith("gs://"):
        raise UsageError("%s %s: must be a local directory (a bucket goes in "
                         "--gcs_output_path)" % (flag, path))
    return path


def check_index(given, source, only="--index-only"):
    """A source index file the user named (--index FILE) must be there: it is read,
    never walked around in silence.  Not checked for `only` (--index-only, which
    writes it) nor for a Hugging Face copy (whose spool goes beside that path)."""
    if not given or source.kind in hfcopy.KINDS or os.path.exists(given):
        return
    if source.remote:
        raise UsageError("--index %s: no such file; a gs:// source keeps its own index "
                         "in the cache directory, so drop --index" % given)
    raise UsageError("--index %s: no such file. Write it first (the same command with "
                     "%s), correct the path, or drop --index to walk the source"
                     % (given, only))


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

def resolve_task(task_index, task_count, prog, log=None, environ=None):
    """The tasks.Task of this run (None: ordinary run); says so on `log`."""
    task = tasks.detect(task_index, task_count, os.environ if environ is None else environ)
    if task is not None:
        (log or sys.stderr).write("%s: task %d of %d (from %s); its shards are listed "
                                  "once the plan is made\n"
                                  % (prog, task.index, task.count, task.how))
    return task
