"""`python -m ilsvrc.cli.index DIR -o FILE`: walk a source once and write its index
file, which every task of a multi-machine run then reads."""

import argparse
import sys

from ilsvrc import pool
from ilsvrc.cli import options
from ilsvrc.errors import main_guard
from ilsvrc.sources import cached, discover

PROG = "python -m ilsvrc.cli.index"


def parse(argv):
    p = argparse.ArgumentParser(prog=PROG, description="Walk the ILSVRC2012 source "
                                "in DIR once and write its index file, which every "
                                "task of a multi-machine run then reads.")
    p.add_argument("dir", metavar="DIR", help="the source directory (as given to "
                   "build.sh or the slim driver)")
    p.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="where to write the index: the conversion's output "
                   "directory/%s is where the front ends look" % cached.DEFAULT_NAME)
    options.add(p, "index", ("source", "run"))
    return p.parse_args(argv)


def run(argv):
    a = parse(argv)
    source = discover.find_source(a.dir, a.source)
    with pool.Pool(options.workers(a.workers, "--workers")) as runner:
        cached.write_index(source, runner, a.output)
    return 0


def main(argv=None):
    return main_guard(lambda: run(sys.argv[1:] if argv is None else argv), PROG)


if __name__ == "__main__":
    sys.exit(main())
