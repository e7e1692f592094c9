"""Recognising the published ILSVRC2012 release files by size and checksum
(`./verify.sh --checksums`): which published file each given file is, or that it is
none of them.

A file whose size is no published size is reported without being read (a file
whose published size is unknown, the devkit, is hashed when its name says it is
that file); a file of a published size is read once, computing MD5 and SHA-256
together.  The parts of a split tar (NAME.001, ...; ilsvrc/sources/parts.py) are
one file, read in place.  The table of published files is a parameter, so the
engine can be tested on small files.
"""

import hashlib
import os
import sys
import time
from typing import NamedTuple, Optional

from ilsvrc.errors import UserError
from ilsvrc.sources import parts


class Published(NamedTuple):
    """A published file: its name, size (None: not published) and checksums (hex,
    None: not published).  An entry with neither is known but cannot be checked."""
    name: str
    size: Optional[int]
    md5: Optional[str]
    sha256: Optional[str]


# The figures torchvision's ImageNet code checks the release against.
PUBLISHED = (
    Published("ILSVRC2012_img_train.tar", 147897477120,
              "1d675b47d978889d74fa0da5fadfb00e",
              "b08200a27a8e34218a0e58fde36b0fe8f73bc377f4acea2d91602057c3ca45bb"),
    Published("ILSVRC2012_img_val.tar", 6744924160,
              "29b22e2961454d5413ddabcf34fc5622",
              "c7e06a6c0baccf06d8dbeb6577d71efff84673a5dbdd50633ab44f8ea0456ae0"),
    Published("ILSVRC2012_devkit_t12.tar.gz", None,
              "fa75699e90414af021442c21a62c3abf", None),
    Published("ILSVRC2012_bbox_train_v2.tar.gz", None, None, None),
)
PREFIX = "ILSVRC2012_"       # what a release file's name looks like, in a directory
CHUNK = 8 << 20


class Item(NamedTuple):
    """One logical file: `shown` names it in the report, `name` is its base name
    (a split file's: the name before .NNN), `paths` the file or its parts."""
    shown: str
    name: str
    paths: tuple
    size: int


class Result(NamedTuple):
    item: Item
    verdict: str          # "published", "other", "unchecked"
    line: str


# --------------------------------------------------------------------------- what to check

def _split_name(path):
    """(directory, base name) when `path` looks like a part (NAME.<2+ digits>)."""
    d, name = os.path.split(path)
    head, dot, digits = name.rpartition(".")
    if dot and len(digits) >= 2 and digits.isdigit() and head:
        return d, head
    return None


def _item(paths, whole=None):
    sizes = [os.path.getsize(p) for p in paths]
    if whole is None:
        return Item(paths[0], os.path.basename(paths[0]), tuple(paths), sizes[0])
    shown = "%s (%d part%s)" % (parts.part_range(paths), len(paths),
                                "s" if len(paths) > 1 else "")
    return Item(shown, os.path.basename(whole), tuple(paths), sum(sizes))


def _group(files):
    """Items of regular files, in the order given: the parts of one split file
    grouped where its first part stands (in order, checked to be a clean
    sequence), every other file alone."""
    groups, order = {}, []
    for path in files:
        split = _split_name(path)
        key = os.path.join(*split) if split else path
        if key not in groups:
            groups[key] = []
            order.append((key, bool(split)))
        groups[key].append(path)
    items = []
    for key, is_split in order:
        if not is_split:
            items.append(_item(groups[key]))
            continue
        found = sorted((int(p.rpartition(".")[2]), len(p.rpartition(".")[2]), p)
                       for p in groups[key])
        items.append(_item(parts.order(found, key), key))
    return items


def gather(args):
    """The items to check: each file given, and in each directory given every
    regular file named like a release file (ILSVRC2012_*); UserError for a path
    that is not there, or nothing to check."""
    files, seen = [], set()
    for arg in args:
        if os.path.isdir(arg):
            names = sorted(n for n in os.listdir(arg) if n.startswith(PREFIX))
            found = [os.path.join(arg, n) for n in names
                     if os.path.isfile(os.path.join(arg, n))]
            if not found:
                raise UserError("%s holds no release files (%s*): give the directory "
                                "holding the downloads, or the files" % (arg, PREFIX))
        elif os.path.isfile(arg):
            found = [arg]
        else:
            raise UserError("%s is not a file or directory" % arg)
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                files.append(path)
    return _group(files)


# --------------------------------------------------------------------------- reading

def _open(item):
    """A file object reading the item front to back (a split file: its parts in
    place, as one file)."""
    if len(item.paths) > 1:
        return parts.Joined(os.path.join(os.path.dirname(item.paths[0]), item.name),
                            item.paths)
    try:
        return open(item.paths[0], "rb")
    except OSError as err:
        raise UserError("cannot read %s: %s" % (item.paths[0], err.strerror))


class _Meter:
    """Bytes hashed, on stderr: a line every `every` seconds (in place on a
    terminal) with rate and ETA, and one when the file is done."""

    def __init__(self, item, log, every):
        self.item, self.log, self.every = item, log, every
        self.tty = getattr(log, "isatty", lambda: False)()
        self.start = self.last = time.monotonic()
        self.done = 0

    def _line(self, text, end):
        self.log.write(("\r" if self.tty else "") + text + end)
        self.log.flush()

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.item.size - self.done) / rate if rate > 0 else 0
        self._line("checksums: %s  %.1f of %.1f GB (%d%%)  %.0f MB/s  ETA %s"
                   % (self.item.name, self.done / 1e9, self.item.size / 1e9,
                      100 * self.done // max(self.item.size, 1), rate / 1e6,
                      _duration(eta)), "" if self.tty else "\n")

    def finish(self):
        took = max(time.monotonic() - self.start, 1e-9)
        self._line("checksums: %s  %s bytes read in %s (%.0f MB/s)"
                   % (self.item.shown, "{:,}".format(self.done), _duration(took),
                      self.done / took / 1e6), "\n")


def _duration(seconds):
    seconds = int(seconds)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60) if seconds >= 3600 \
        else "%dm%02ds" % (seconds // 60, seconds % 60)


def digests(item, log, every=5.0):
    """(md5, sha256) hex of the item, read once, progress on `log`."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    meter = _Meter(item, log, every)
    with _open(item) as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            md5.update(block)
            sha.update(block)
            meter.update(len(block))
    meter.finish()
    if meter.done != item.size:
        raise UserError("%s changed while it was read (%d bytes read, %d expected); "
                        "check it again once the download has finished"
                        % (item.shown, meter.done, item.size))
    return md5.hexdigest(), sha.hexdigest()


# --------------------------------------------------------------------------- judging

def _is(item, entry):
    """'PATH: is NAME', or for parts 'PATH.001-.012 (12 parts) together are NAME'."""
    verb = " together are" if len(item.paths) > 1 else ": is"
    renamed = " (renamed)" if item.name != entry.name else ""
    return "%s%s %s%s" % (item.shown, verb, entry.name, renamed)


def _matches(entry, md5, sha):
    return (entry.md5 or entry.sha256) and entry.md5 in (None, md5) and \
        entry.sha256 in (None, sha)


def _unread(item, table):
    """The Result for an item whose size matches no published size, or None when
    it is to be hashed (its name is that of an entry of unpublished size)."""
    named = [e for e in table if e.name == item.name]
    if named and named[0].size is None:
        if named[0].md5 or named[0].sha256:
            return None
        return Result(item, "unchecked", "%s: not checked: no published size or "
                      "checksum for %s" % (item.shown, item.name))
    hint = ""
    if named:
        hint = "; %s is %s bytes: an incomplete download?" % (
            item.name, "{:,}".format(named[0].size))
    return Result(item, "other", "%s: not a published release file (size %s bytes%s)"
                  % (item.shown, "{:,}".format(item.size), hint))


def check_item(item, table=PUBLISHED, log=None, every=5.0):
    """The Result for one item against `table`."""
    candidates = [e for e in table if e.size == item.size and (e.md5 or e.sha256)]
    if not candidates:
        unread = _unread(item, table)
        if unread is not None:
            return unread
        candidates = [e for e in table if e.name == item.name]
    md5, sha = digests(item, log or sys.stderr, every)
    for entry in sorted(candidates, key=lambda e: e.name != item.name):
        if _matches(entry, md5, sha):
            what = " and ".join(k for k, v in (("MD5", entry.md5),
                                               ("SHA-256", entry.sha256)) if v)
            return Result(item, "published", "%s (%s bytes, %s match%s)"
                          % (_is(item, entry), "{:,}".format(item.size),
                             what, "" if " and " in what else "es"))
    names = " or ".join(e.name for e in candidates)
    like = "the size" if candidates[0].size is not None else "the name"
    return Result(item, "other", "%s: not a published release file: it has %s of %s "
                  "but not its checksum (MD5 %s, SHA-256 %s): damaged or another file; "
                  "download it again" % (item.shown, like, names, md5, sha))


def check(args, table=PUBLISHED, out=None, log=None, every=5.0):
    """Check every item of `args` (see gather), one line each on `out` as it is
    done; the Results."""
    out, log = out or sys.stdout, log or sys.stderr
    results = []
    for item in gather(args):
        result = check_item(item, table, log, every)
        out.write(result.line + "\n")
        out.flush()
        results.append(result)
    return results


def summary(results):
    """(all published?, the summary line)."""
    bad = [r for r in results if r.verdict == "other"]
    good = [r for r in results if r.verdict == "published"]
    skipped = len(results) - len(bad) - len(good)
    note = "; %d not checked (no published figures)" % skipped if skipped else ""
    if bad:
        return False, "%d of %d files are not published release files (listed above)%s" \
            % (len(bad), len(results), note)
    return True, "OK: %d file%s, each a published release file%s" % (
        len(good), "" if len(good) == 1 else "s", note)
