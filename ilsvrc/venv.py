"""The Python front-end scripts (official/, slim/datasets/, bench/) run under any
`python3`: started outside the checkout's virtualenv, they restart themselves in it
(`.venv`, made by setup.sh), or, when there is none and this Python lacks what they
need, say in one line how to make it."""

import importlib.util
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(TOP, ".venv")


def _inside(venv):
    return os.path.realpath(sys.prefix) == os.path.realpath(venv)


def use_checkout_venv(prog, needs=("absl", "tensorflow")):
    """Re-run this script with the checkout's .venv/bin/python when it exists and
    this is another interpreter; else carry on if this Python has `needs`, or
    exit with one line naming setup.sh."""
    python = os.path.join(VENV, "bin", "python")
    if _inside(VENV):
        return
    if os.access(python, os.X_OK):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(python, [python] + sys.argv)
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if not missing:
        return                      # e.g. the python3 of a TensorFlow container
    sys.stderr.write("%s: this Python (%s) has no %s and the checkout has no "
                     "virtualenv: run %s first (it creates %s), then rerun.\n"
                     % (prog, sys.executable, " and no ".join(missing),
                        os.path.join(TOP, "setup.sh"), VENV))
    sys.exit(1)
