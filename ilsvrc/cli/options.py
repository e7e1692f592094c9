"""Pieces the command-line scripts share: our absl flags, worker counts, and the
argument handling of the small positional-argument scripts."""

import sys

from ilsvrc import image, pool
from ilsvrc.errors import UsageError


def define_flags(flags):
    """Define --num_workers, --image_check and --verify on absl's `flags` module."""
    flags.DEFINE_integer("num_workers", None, "Worker processes (default: one per CPU "
                         "core). The output does not depend on it.")
    flags.DEFINE_enum("image_check", "header", list(image.CHECKS), "header: read size "
                      "from the JPEG header and check its structure (fast); decode: "
                      "decode every image with TensorFlow as upstream does.")
    flags.DEFINE_boolean("verify", True, "Re-read every shard after writing and check "
                         "it against the plan.")


def add_run_options(parser, check=True):
    """-j/--workers (and --check, --no-verify) for the argparse front ends."""
    parser.add_argument("-j", "--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: one per CPU core, here %d; "
                        "0 = all in this process). The output does not depend on it."
                        % pool.default_workers())
    if check:
        parser.add_argument("--check", choices=image.CHECKS, default="header",
                            help="image check: 'header' reads size and structure from "
                            "the JPEG header (default, fast); 'decode' decodes every "
                            "image with TensorFlow, as upstream does")
        parser.add_argument("--no-verify", action="store_true",
                            help="skip re-reading the shards after writing")


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
    import os
    from ilsvrc import tasks
    task = tasks.detect(task_index, task_count, os.environ if environ is None else environ)
    if task is not None:
        (log or sys.stderr).write("%s: task %d of %d (from %s); its shards are listed "
                                  "once the plan is made\n"
                                  % (prog, task.index, task.count, task.how))
    return task


def index_path(given, out_dir):
    """The index file to read or write: --index, else OUT/ilsvrc-source.index."""
    import os
    from ilsvrc import index
    return given or os.path.join(out_dir, index.DEFAULT_NAME)


def write_index(found, runner, path):
    """--index-only: walk the source and write its index to `path`."""
    import os
    from ilsvrc import index
    from ilsvrc.errors import UserError
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise UserError("cannot create %s: %s" % (parent, err.strerror or err))
    index.write_for(found, runner, path)
    return 0
