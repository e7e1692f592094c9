"""The engine options, defined once for the absl and the argparse front ends, worker
counts, and the argument handling of the small positional-argument scripts."""

import sys
from typing import NamedTuple

from ilsvrc import contract, image, pool
from ilsvrc.errors import UsageError


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
           "re-read every shard after writing and check it against the plan",
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
        raise UsageError("%s %s: writing to a bucket is not supported here; give a local "
                         "directory and copy the shards afterwards (gsutil -m cp -r)"
                         % (flag, path))
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
