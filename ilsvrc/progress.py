"""The one progress printer: counts, rate and ETA on stderr, a line every few
seconds (overwritten in place on a terminal; every 15 s otherwise, or every
$ILSVRC_PROGRESS_EVERY seconds).

    progress = Progress(total, "writing", unit="images", second=(shards, "shards"))
    progress.update(images, nbytes, second=1)     # as work is done
    with progress.waiting("the last shards being flushed to disk"):
        ...                                        # said only if it takes a while
    progress.finish()                              # the last line

The ETA is shown only once it can be estimated: from the rate since the first thing
was done (start-up, which can be most of a short run, is left out), over the last
minute, and only once 5 % of the total is done (or 1 %, 30 s after the first thing
was, for a long step).  With a second count (shards besides images) the ETA is the later of the
two, so a run whose images are done while many small shards are still being
written says so.  unit="bytes" prints counts as MB or GB.
"""

import collections
import contextlib
import os
import sys
import threading
import time

EVERY_ENV = "ILSVRC_PROGRESS_EVERY"
ETA_AFTER_FRACTION = 0.05     # no ETA before 5 % is done, unless 1 % is and 30 s
ETA_EARLY_FRACTION = 0.01     # have passed since the first thing was (a long step)
ETA_AFTER_SECONDS = 30.0
RATE_WINDOW = 60.0            # the rate (and so the ETA) is that of the last minute


def fmt_time(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dm%02ds" % (seconds // 60, seconds % 60)


def fmt_bytes(n, scale=None):
    """'12.3 MB' or '1.23 GB' (decimal units; `scale` picks the unit of another
    number, so that 'done/total' share one)."""
    if (n if scale is None else scale) >= 1e9:
        return "%.2f GB" % (n / 1e9)
    return "%.1f MB" % (n / 1e6)


def _fmt_rate(rate):
    return "%.0f" % rate if rate >= 10 else "%.1f" % rate


def interval(tty):
    """Seconds between lines: $ILSVRC_PROGRESS_EVERY, else 1 on a terminal, 15 in a
    log file."""
    value = os.environ.get(EVERY_ENV, "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    return 1.0 if tty else 15.0


def eta(done, total, waited, rate):
    """Seconds left, or None while too little is done to say: under
    ETA_AFTER_FRACTION of `total`, unless ETA_EARLY_FRACTION is done and
    ETA_AFTER_SECONDS have passed since the first thing was (`waited`); `rate`: per
    second since then (None: not known).  A handful of results says nothing: a
    stall after them (a worker loading what it needs) would make hours of seconds."""
    if total is None:
        return None
    if done >= total:
        return 0.0
    if done <= 0:
        return None
    if done < ETA_AFTER_FRACTION * total and (done < ETA_EARLY_FRACTION * total or
                                              waited < ETA_AFTER_SECONDS):
        return None
    return (total - done) / rate if rate else None


class _Count:
    """One count (images, shards, bytes...), its total and its recent rate."""

    def __init__(self, total, unit):
        self.total, self.unit, self.done = total, unit, 0
        self.first = None                       # when the first thing was done
        self.samples = collections.deque()      # (time, done) since then, 1 a second

    def add(self, n, now):
        self.done += n
        if self.done <= 0:
            return
        if self.first is None:
            self.first = now
        if not self.samples or now - self.samples[-1][0] >= 1.0:
            self.samples.append((now, self.done))
        # keep one sample at or before the window's start, so the rate spans it
        while len(self.samples) > 1 and self.samples[1][0] <= now - RATE_WINDOW:
            self.samples.popleft()

    def rate(self, now):
        """Per second over the last minute (since the first thing was done at
        most); None before a second has passed."""
        if not self.samples or now - self.samples[0][0] < 1.0:
            return None
        t0, d0 = self.samples[0]
        return (self.done - d0) / (now - t0)

    def eta(self, now):
        waited = 0.0 if self.first is None else now - self.first
        return eta(self.done, self.total, waited, self.rate(now))

    def shown(self):
        if self.unit == "bytes":
            if self.total is None:
                return fmt_bytes(self.done)
            return "%s/%s" % (fmt_bytes(self.done, self.total).split()[0],
                              fmt_bytes(self.total))
        if self.total is None:
            return "%d %s" % (self.done, self.unit)
        return "%d/%d %s" % (self.done, self.total, self.unit)


class Progress:
    """Rate and ETA on `stream` (stderr): a line every `every` seconds (default:
    `interval`), overwritten on a terminal.  `total` None: an open-ended count (no
    ETA).  `second`: (total, unit) of a second count updated alongside."""

    def __init__(self, total, label, stream=None, unit="images", second=None,
                 every=None, clock=time.monotonic):
        self.label, self.unit, self.clock = label, unit, clock
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.every = interval(self.tty) if every is None else every
        self.start = self.last = clock()
        self.counts = [_Count(total, unit)]
        if second is not None:
            self.counts.append(_Count(second[0], second[1]))
        self.nbytes = 0
        self.lines = 0
        self._shown = None        # the counts of the last line written
        self._width = 0
        self._lock = threading.Lock()

    @property
    def total(self):
        return self.counts[0].total

    @property
    def done(self):
        return self.counts[0].done

    def update(self, n, nbytes=0, force=False, second=0):
        now = self.clock()
        self.counts[0].add(n, now)
        if len(self.counts) > 1:
            self.counts[1].add(second, now)
        self.nbytes += nbytes
        if force or now - self.last >= self.every:
            self.last = now
            self._write(self.line(now), end=force)
            self._shown = [c.done for c in self.counts]

    def finish(self, always=True):
        """The last line (always=False: only if a line was printed before, so a
        step that was quick says nothing); in a log file, not when the line before
        already gave the final counts."""
        if not (always or self.lines):
            return
        if self.tty or self._shown != [c.done for c in self.counts]:
            self.update(0, 0, force=True)

    def eta(self, now=None):
        """Seconds left (the later of the counts with a total), or None."""
        now = self.clock() if now is None else now
        lefts = [c.eta(now) for c in self.counts if c.total is not None]
        if not lefts or None in lefts:
            return None
        return max(lefts)

    def line(self, now=None):
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        main = self.counts[0]
        parts = ["%s: %s" % (self.label, "  ".join(c.shown() for c in self.counts))]
        rate = main.done / elapsed            # on average, start-up included
        if self.unit == "bytes":
            parts.append("%s/s" % fmt_bytes(rate))
        else:
            parts.append("%s %s/s" % (_fmt_rate(rate), self.unit))
            if self.nbytes:
                parts.append("%.1f MB/s" % (self.nbytes / elapsed / 1e6))
        parts.append("elapsed " + fmt_time(elapsed))
        left = self.eta(now)
        if left is not None:
            parts.append("ETA " + fmt_time(left))
        return "  ".join(parts)

    def say(self, text):
        """A line of its own under this label (say, what a step still waits for),
        below the progress line."""
        self._write("%s: %s" % (self.label, text), end=True, below=True)

    def _write(self, line, end=False, below=False):
        with self._lock:
            self.lines += 1
            if self.tty:
                if below and self._width:     # keep the line being overwritten
                    self.stream.write("\n")
                    self._width = 0
                pad = " " * max(0, self._width - len(line))
                self._width = 0 if end else len(line)
                self.stream.write("\r" + line + pad + ("\n" if end else ""))
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    @contextlib.contextmanager
    def waiting(self, what, after=2.0):
        """Around a wait at the end of a step: if it takes longer than `after`
        seconds, say what is still going on ('finishing: WHAT'), and when it ends."""
        said = threading.Event()

        def say():
            said.set()
            self.say("finishing: %s" % what)
        timer = threading.Timer(after, say)
        timer.daemon = True
        began = self.clock()
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            timer.join()
        if said.is_set():                 # (not when the wait ended in an error)
            self.say("finished after %s more" % fmt_time(self.clock() - began))
