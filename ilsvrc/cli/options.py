"""The engine options, defined once (one table) for the absl and the argparse front
ends -- run, task-mode, reader-file, source and label options alike --, worker
counts, the argument handling of the small positional-argument scripts, and the
help of the absl scripts.

A help text of the table is a template: `{index_only}` and the like stand for
another option as the front end at hand spells it (--index-only, --index_only),
`{out}` and `{dir}` for the front end's names of its output and source directories.
An option whose meaning depends on what the command does (ROLES) has one text per
role."""

import os
import sys
from typing import NamedTuple

from ilsvrc import contract, pool, tasks
from ilsvrc.errors import UsageError
from ilsvrc.records import image
from ilsvrc.sources import discover, hfcopy

ROLES = ("convert", "verify", "index", "extract")


class Option(NamedTuple):
    """One engine option, as both kinds of front end spell it."""
    absl: str         # absl flag name (official/imagenet_to_gcs.py, slim/datasets/*.py)
    argparse: tuple   # argparse flags (build.sh, verify.sh, the slim drivers)
    kind: object      # int, str, bool, or a tuple of choices
    default: object
    help: object      # a template, or {role: template} (see the module's doc)
    group: str = "run"   # run, check, task, index_only, reader, source, labels
    metavar: str = None


TASK_MODE = ("task mode (more than one machine, see docs/multi-machine.md): this run "
             "%s task I's share of the shards of N tasks%s; without {task_index} and "
             "{task_count} the task comes from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX "
             "(+ ILSVRC_TASK_COUNT), BATCH_TASK_INDEX or AWS_BATCH_JOB_ARRAY_INDEX (+ "
             "ILSVRC_TASK_COUNT) when set")
INDEX_DEFAULT = "(default: ilsvrc-source.index in {out} when it exists{remote_index})"

OPTIONS = (
    Option("num_workers", ("-j", "--workers"), int, None,
           "worker processes (default: one per CPU core, here %d; 0 = all in this "
           "process). The result does not depend on it." % pool.default_workers(),
           metavar="N"),
    Option("image_check", ("--check",), image.CHECKS, "header",
           "image check: 'header' reads size and structure from the JPEG header "
           "(default, fast); 'decode' decodes every image with TensorFlow, as upstream "
           "does", group="check"),
    Option("verify", ("--no-verify",), bool, True,
           "check every shard against the plan before it is kept (the worker that "
           "wrote it reads it back; ./verify.sh re-reads everything from disk)",
           group="check"),
    Option(contract.CUSTOM_FLAG[2:], (contract.CUSTOM_ARG,), bool, False, {
        "convert": "accept synsets outside the 1000 of ILSVRC2012 (a custom class "
                   "set); the run prints the label range it gives them. Without it "
                   "such a synset is an error.",
        "verify": "the shards may hold a custom class set: synsets outside the 1000 of "
                  "ILSVRC2012 and labels above 1000 pass as long as one synset has one "
                  "label and one label one synset (with --source, the source is read "
                  "under the same rule). Without it the whole ILSVRC2012 label "
                  "contract applies.",
        "extract": "accept synsets outside the 1000 of ILSVRC2012 (a custom class set) "
                   "in the source and in SYNSETS_FILE. Without it such a synset stops "
                   "the run before anything is unpacked.",
        "index": "no effect here (the conversion that reads the index applies it); "
                 "accepted so that a converter's options can be passed on unchanged"}),
    Option("task_index", ("--task-index", "--task_index"), int, None, {
        "convert": TASK_MODE % ("writes", " (I counts from 0)"),
        "verify": TASK_MODE % ("re-reads", " (I counts from 0; with --source, exactly "
                               "the shards task I of the conversion wrote)")},
           group="task", metavar="I"),
    Option("task_count", ("--task-count", "--task_count"), int, None,
           "number of tasks (0 or 1: an ordinary run)", group="task", metavar="N"),
    Option("index", ("--index",), str, None, {
        "convert": "{when}the source index file to read instead of walking the "
                   "source; a FILE named here must exist (write it with {index_only}) "
                   + INDEX_DEFAULT,
        "verify": "{when}the source index file to read instead of walking the source "
                  "(the shards are compared with the plan made from it); a FILE named "
                  "here must exist " + INDEX_DEFAULT},
           group="task", metavar="FILE"),
    Option("index_only", ("--index-only", "--index_only"), bool, False,
           "{when}only walk the source and write its index file for the tasks to read "
           "({index} FILE, default ilsvrc-source.index in {out}{remote_index}), then "
           "exit; a Hugging Face copy is unpacked into its spool instead (ilsvrc-spool "
           "beside the index file)", group="index_only"),
    Option("dali_index", ("--dali-index", "--dali_index"), bool, False,
           "also write a DALI index file per shard (dali-index/<split>/<shard>.idx in "
           "{out}) for nvidia.dali's fn.readers.tfrecord (docs/readers.md); a rerun "
           "adds those missing. Not with a gs:// output", group="reader"),
    Option("tfds_metadata", ("--tfds-metadata", "--tfds_metadata"), bool, False,
           "also write TFDS metadata (dataset_info.json, features.json) in {out} so that "
           "tfds.builder_from_directory() reads the shards (in task mode: the task that "
           "finishes last writes it). Not with a gs:// output", group="reader"),
    Option("source", ("--source",), discover.SOURCES, "auto",
           "which copy {dir} holds: tar: the release tars (whole or in parts); tree: the "
           "extracted train/ and validation/; kaggle: the unpacked Kaggle ILSVRC/ tree; "
           "zip: the Kaggle zip, read in place; parquet, hf-tar: the Hugging Face copy "
           "(data/*.parquet or data/*.tar.gz), unpacked once into ilsvrc-spool beside "
           "the index file (default auto: the first of tar, tree, kaggle, zip found in "
           "{dir}, else a Hugging Face copy)", group="source"),
    Option("validation_labels_file", ("--labels",), str, None,
           "{when}the validation label file, one synset a line in the order of "
           "the validation images' numbers, local or gs://BUCKET/OBJECT (default: "
           "synset_labels.txt in {dir}, else the Kaggle copy's LOC_val_solution.csv, "
           "else the shipped imagenet_2012_validation_synset_labels.txt)",
           group="labels", metavar="FILE"),
)
# What a front end does not name itself: its output and source directories are OUT
# and DIR, `when` is what the source options need ("with --source: "), a gs://
# output keeps its index file in the local cache directory.
FIELDS = dict(out="OUT", dir="DIR", when="",
              remote_index="; for a gs:// {out}, in the local cache directory")


def _long(opt, absl):
    if absl:
        return "--" + opt.absl
    return next(f for f in opt.argparse if f.startswith("--"))


def texts(role, absl=False, **fields):
    """{absl name: help} of every option of the table that has a text for `role`, as
    the front end (absl or argparse, with its `fields`) shows it."""
    if role not in ROLES:
        raise ValueError("role %r: one of %s" % (role, ", ".join(ROLES)))
    names = dict(FIELDS, **{o.absl: _long(o, absl) for o in OPTIONS})
    names.update(fields)
    names = {k: v.format(**names) for k, v in names.items()}   # fields name fields
    out = {}
    for opt in OPTIONS:
        template = opt.help.get(role) if isinstance(opt.help, dict) else opt.help
        if template is not None:
            out[opt.absl] = template.format(**names)
    return out


def _chosen(role, groups):
    for opt in OPTIONS:
        if opt.group in groups and not (isinstance(opt.help, dict)
                                        and role not in opt.help):
            yield opt


def define(flags, role, groups, **fields):
    """The options of `groups` on absl's `flags` module, with the help `role` gives
    them.  The script then calls flags.adopt_module_key_flags(options) so that its
    --help lists them with its own flags."""
    helps = texts(role, absl=True, **fields)
    for opt in _chosen(role, groups):
        text = helps[opt.absl]
        if opt.kind is int:
            flags.DEFINE_integer(opt.absl, opt.default, text)
        elif opt.kind is str:
            flags.DEFINE_string(opt.absl, opt.default, text)
        elif opt.kind is bool:
            flags.DEFINE_boolean(opt.absl, opt.default, text)
        else:
            flags.DEFINE_enum(opt.absl, opt.default, list(opt.kind), text)


def add(parser, role, groups, **fields):
    """The same options for an argparse front end; each action made carries the
    option's absl name as `option` (the help tests know the table's texts by it)."""
    helps = texts(role, **fields)
    for opt in _chosen(role, groups):
        text = helps[opt.absl]
        if opt.kind in (int, str):
            action = parser.add_argument(*opt.argparse, type=opt.kind,
                                         default=opt.default, metavar=opt.metavar,
                                         help=text)
        elif opt.kind is bool and opt.default:   # the argparse flag turns it off
            action = parser.add_argument(*opt.argparse, action="store_true",
                                         help="do not " + text)
        elif opt.kind is bool:                   # off by default: the flag turns it on
            action = parser.add_argument(*opt.argparse, action="store_true", help=text)
        else:
            action = parser.add_argument(*opt.argparse, choices=opt.kind,
                                         default=opt.default, help=text)
        action.option = opt.absl


def run_absl(main, argv=None):
    """app.run(main) for an absl script, its help as argparse's: -h, -?, --help and
    --helpshort print the script's doc and flags (the engine's among them, see
    define) and exit 0; --helpfull also lists absl's own flags."""
    from absl import app
    argv = sys.argv if argv is None else argv
    app.define_help_flags()
    args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    full = "--helpfull" in args
    if full or any(a in ("-h", "-?", "--help", "--helpshort") for a in args):
        app.usage(shorthelp=not full, writeto_stdout=True)
        if not full:
            sys.stdout.write("\n--helpfull also lists absl's own flags (--flagfile, "
                             "logging and debugging).\n")
        sys.exit(0)
    app.run(main, argv=argv)


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
    """-h/--help prints usage, `doc` (what the script does) and the one option, and
    returns 0; a count outside least..most (most None: no limit) prints usage on
    stderr and returns upstream's 255.  None: go on."""
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write("%s\n%s\n\noptions:\n  -h, --help  print this help and exit\n"
                         % (usage, doc.strip("\n")))
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
