"""Errors a user can cause, and the one way they reach the terminal."""

import sys


class UserError(Exception):
    """A problem with the input, the flags or the machine, explained in one message.

    Front ends print it without a traceback and exit non-zero.  Worker processes
    raise it too; it pickles as its message.
    """

    exit_code = 1


class UsageError(UserError):
    """A bad flag or argument: exit status 2, like argparse."""

    exit_code = 2


def report(err, prog):
    """Print `err` as one line on stderr and return the exit status to use."""
    sys.stderr.write("%s: error: %s\n" % (prog, err))
    sys.stderr.flush()
    return getattr(err, "exit_code", 1)


def main_guard(func, prog):
    """Run `func()`; turn UserError and Ctrl-C into a message and an exit status."""
    try:
        return func() or 0
    except UserError as err:
        return report(err, prog)
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted; finished shards are kept, rerun the same "
                         "command to resume.\n" % prog)
        return 130
