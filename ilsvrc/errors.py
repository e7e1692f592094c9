"""Errors a user can cause, and the one way they reach the terminal."""

import signal
import sys
import threading


class UserError(Exception):
    """A problem with the input, the flags or the machine, explained in one message.

    Front ends print it without a traceback and exit non-zero.  Worker processes
    raise it too; it pickles as its message.
    """

    exit_code = 1


class UsageError(UserError):
    """A bad flag or argument: exit status 2, like argparse."""

    exit_code = 2


class Terminated(BaseException):
    """SIGTERM reached the main process (Slurm, Kubernetes and Batch send it first when
    they stop a job): unwound like Ctrl-C, so the workers are stopped on the way out."""


def _terminate(signum, frame):
    raise Terminated()


def report(err, prog):
    """Print `err` as one line on stderr and return the exit status to use."""
    sys.stderr.write("%s: error: %s\n" % (prog, err))
    sys.stderr.flush()
    return getattr(err, "exit_code", 1)


def main_guard(func, prog):
    """Run `func()`; turn UserError, Ctrl-C and SIGTERM into one line and an exit
    status (130 for Ctrl-C, 143 for SIGTERM, as a shell reports them)."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        return func() or 0
    except UserError as err:
        return report(err, prog)
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted; finished shards are kept, rerun the same "
                         "command to resume.\n" % prog)
        return 130
    except Terminated:
        sys.stderr.write("%s: terminated (SIGTERM); finished shards are kept, rerun the "
                         "same command to resume.\n" % prog)
        return 143
    finally:
        if main:
            signal.signal(signal.SIGTERM, before)
