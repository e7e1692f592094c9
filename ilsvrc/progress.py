"""The one progress printer: counts, rate and ETA on stderr, a line every few
seconds (overwritten in place on a terminal)."""

import sys
import time


def _fmt_time(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dm%02ds" % (seconds // 60, seconds % 60)


class Progress:
    """Rate and ETA on stderr: a line every `every` seconds (overwritten on a tty).
    `total` None: the count is open-ended (no ETA)."""

    def __init__(self, total, label, stream=None, unit="images"):
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 1.0 if self.tty else 15.0
        self.start = self.last = time.monotonic()
        self.done = self.nbytes = 0

    def update(self, images, nbytes, force=False):
        self.done += images
        self.nbytes += nbytes
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total is None:            # a stream of unknown length: no ETA
            count, eta = "%d" % self.done, ""
        else:
            left = (self.total - self.done) / rate if rate > 0 else 0
            count, eta = "%d/%d" % (self.done, self.total), "  ETA " + _fmt_time(left)
        line = "%s: %s %s  %.0f %s/s  %.1f MB/s  elapsed %s%s" % (
            self.label, count, self.unit, rate, self.unit,
            self.nbytes / elapsed / 1e6, _fmt_time(elapsed), eta)
        if self.tty:
            self.stream.write("\r" + line + ("\n" if force else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
