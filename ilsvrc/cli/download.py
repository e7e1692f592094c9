"""`./download.sh hf DIR`: the Hugging Face copy of ILSVRC2012 (`ILSVRC/imagenet-1k`)
fetched with the official client into DIR, laid out as in the repository
(DIR/data/..., DIR/classes.py), every file checked against the Hub's size and SHA-256.

The token comes from HF_TOKEN or the `hf auth login` store, never from the command
line.  Rerunning the same command after an interruption resumes.
"""

import argparse
import re
import sys

from ilsvrc import storage
from ilsvrc.errors import Terminated, UsageError, main_guard
from ilsvrc.sources import hub

PROG = "download.sh hf"
# Anything shaped like a Hugging Face token is masked before argparse echoes arguments.
_TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{8,}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        super().error(_TOKEN_SHAPE.sub("hf_***", message))


def _splits(text):
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in hub.SPLITS]
    if bad or not names:
        raise argparse.ArgumentTypeError("%r: give a comma-separated list of %s"
                                         % (text, ", ".join(hub.SPLITS)))
    return tuple(dict.fromkeys(names))


def parse(argv):
    if any(a == "--token" or a.startswith("--token=") for a in argv):
        raise UsageError("a token is never taken on the command line: set HF_TOKEN or run "
                         "`hf auth login`")
    p = _Parser(
        prog=PROG, description="Download ILSVRC2012 from the gated Hugging Face dataset "
        "%s into DIR with the official client (huggingface_hub), laid out as in the "
        "repository, each file checked against the size and SHA-256 the Hub reports."
        % hub.REPO,
        epilog="Token: HF_TOKEN or `hf auth login`; accept the terms at %s first. "
        "After an interruption the same command picks up where it stopped: complete "
        "files are kept and not hashed again. DIR/%s records the commit and the files."
        % (hub.PAGE, hub.RECORD))
    p.add_argument("dir", metavar="DIR", help="directory to download into (created "
                   "if missing)")
    p.add_argument("--splits", type=_splits, default=hub.DEFAULT_SPLITS,
                   metavar="LIST", help="comma-separated splits among %s (default: %s)"
                   % (", ".join(hub.SPLITS), ",".join(hub.DEFAULT_SPLITS)))
    p.add_argument("--revision", default="main", metavar="REV", help="branch, tag or "
                   "commit of the dataset repository (default: main); older commits hold "
                   "the tar.gz layout, which is downloaded the same way")
    return p.parse_args(argv)


def run(argv):
    a = parse(argv)
    if storage.is_remote(a.dir):
        raise UsageError("DIR must be a local directory (not %s)" % a.dir)
    try:
        hub.download(a.dir, a.splits, a.revision)
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted; finished files are kept, rerun the same command "
                         "to resume.\n" % PROG)
        return 130
    except Terminated:
        sys.stderr.write("%s: terminated (SIGTERM); finished files are kept, rerun the same "
                         "command to resume.\n" % PROG)
        return 143
    return 0


def main(argv=None):
    return main_guard(lambda: run(sys.argv[1:] if argv is None else argv), PROG)


if __name__ == "__main__":
    sys.exit(main())
