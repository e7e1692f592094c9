"""What every store shares: gs:// path helpers, the `Info` of an object or file, the
exceptions a store raises (Exists, Transient), the retry loop and the short-read error."""

import collections
import os
import random
import time

from ilsvrc.errors import UserError

GS = "gs://"
RETRIES = 8                   # attempts after the first, backoff 0.5 s .. 30 s
UNREACHABLE_RETRIES = 2       # the same when no connection can be made: a few seconds

Info = collections.namedtuple("Info", "path size crc32c generation metadata")


def is_remote(path):
    return isinstance(path, str) and path.startswith(GS)


def split_path(path):
    """'gs://bucket/a/b' -> ('bucket', 'a/b')."""
    bucket, _, key = path[len(GS):].partition("/")
    return bucket, key


def join(base, name):
    return base.rstrip("/") + "/" + name if is_remote(base) else os.path.join(base, name)


class Exists(Exception):
    """create(): the object is already there (nothing was written)."""


class Transient(Exception):
    """A failure worth retrying: 429, 5xx, a dropped or reset connection."""


class Unreachable(Transient):
    """No connection could be made to the endpoint (refused, unknown host, connect
    timeout); its message is the one line to show once retrying stops."""


def with_retries(fn, attempts=None, sleep=time.sleep, seed=None,
                 unreachable=UNREACHABLE_RETRIES):
    """fn() retried on Transient with exponential backoff and jitter, an Unreachable
    at most `unreachable` times (an endpoint that never answered is not waited on
    for minutes); the last Transient is re-raised."""
    attempts = RETRIES if attempts is None else attempts
    rnd = random.Random(seed)
    delay = 0.5
    for attempt in range(attempts + 1):
        try:
            return fn()
        except Transient as err:
            limit = min(attempts, unreachable) if isinstance(err, Unreachable) else \
                attempts
            if attempt >= limit:
                raise
            sleep(delay * (0.5 + rnd.random()))
            delay = min(delay * 2, 30.0)



def short_read(path, offset, got, size):
    return UserError("%s: the object ends at byte %d, inside a member that should run to "
                     "byte %d (truncated?). Replace it with a complete copy."
                     % (path, offset + got, offset + size))
