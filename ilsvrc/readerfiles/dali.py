"""DALI index files: where they go, writing them with their shard, and checking them.

NVIDIA DALI's `fn.readers.tfrecord` (and the PyTorch `tfrecord` package) need one
index file per shard: one text line per record, "OFFSET LENGTH\\n", where OFFSET is
the byte position of the record in the shard and LENGTH its full framed size (8-byte
length, 4-byte CRC, payload, 4-byte CRC: payload + 16) -- what DALI's tfrecord2idx
writes after a second full read of the data.  The writer knows every payload's size,
so the index costs nothing extra here.

Layout: OUT/dali-index/<split>/<shard name>.idx, for the official layout
(OUT/train/train-NNNNN-of-01024) and the flat slim one (OUT/train-NNNNN-of-01024)
alike.  Sorted, the index files pair one to one with the sorted shards, and no shard
glob (`train-*`, `train*`, `validation-*`) matches the `dali-index` directory.

An index file becomes final just before its shard (see write.Finisher), so a
finished shard written with the option always has its index; a resumed run with the
option writes the index of a shard finished without it by reading that shard's
record headers (8 bytes a record).  Index files of shards that are not finished are
removed at the start of every run, so none is ever stale.
"""

import os
import struct

from ilsvrc.errors import UserError
from ilsvrc.fsutil import atomic_write

DIR_NAME = "dali-index"
SUFFIX = ".idx"
FRAMING = 16   # 8-byte length + 4-byte length CRC + 4-byte data CRC


def index_dir(root, prefix):
    """The index directory of split `prefix` under output directory `root`."""
    return os.path.join(root, DIR_NAME, prefix)


def index_name(shard_name):
    return shard_name + SUFFIX


def lines(payload_sizes):
    """The index file's bytes for records with these payload sizes, in order."""
    out, offset = [], 0
    for size in payload_sizes:
        out.append("%d %d\n" % (offset, size + FRAMING))
        offset += size + FRAMING
    return "".join(out).encode("ascii")


def write_partial(tmp, payload_sizes):
    """Worker side: write the index of a just-written shard to its partial file `tmp`
    (named by the main process, fsutil.partial_path); write.Finisher makes it final,
    just before the shard."""
    with open(tmp, "wb") as f:
        f.write(lines(payload_sizes))


class BadShard(ValueError):
    pass


def record_sizes(shard_path):
    """Payload sizes of the records of a shard, from the record headers alone
    (no CRC check: verify does that); BadShard when the framing does not add up."""
    sizes = []
    with open(shard_path, "rb", buffering=0) as f:
        total = os.fstat(f.fileno()).st_size
        offset = 0
        while offset < total:
            head = os.pread(f.fileno(), 8, offset)
            if len(head) < 8:
                raise BadShard("ends inside the header of record %d" % len(sizes))
            (size,) = struct.unpack("<Q", head)
            if offset + size + FRAMING > total:
                raise BadShard("record %d at byte %d runs past the end of the file"
                               % (len(sizes), offset))
            sizes.append(size)
            offset += size + FRAMING
    return sizes


class Index:
    """The DALI index files of one conversion whose output directory is `root`.

    `enabled`: the run was asked for index files.  Either way `prepare` removes
    index files that no longer belong to a finished shard.
    """

    def __init__(self, root, enabled=True):
        self.root, self.enabled = root, enabled

    def path(self, split, k):
        return os.path.join(index_dir(self.root, split.prefix),
                            index_name(os.path.basename(split.path(k))))

    def prepare(self, split, done, runner=None, alone=True):
        """Before writing `split`: drop partial and stale index files (only when
        `alone`: no other run or task of this plan writes the directory now, whose
        index files may be on their way), and (enabled) write the missing index of
        every shard in `done` from the shard itself.  Returns the number of index
        files written that way."""
        d = index_dir(self.root, split.prefix)
        keep = {index_name(os.path.basename(split.path(k))) for k in done}
        try:
            if alone and os.path.isdir(d):
                for entry in os.scandir(d):
                    if entry.name not in keep:
                        os.remove(entry.path)
            if not self.enabled:
                return 0
            os.makedirs(d, exist_ok=True)
        except OSError as err:
            raise UserError("cannot prepare %s: %s. Choose a writable output directory."
                            % (d, err.strerror or err))
        missing = [(split.path(k), self.path(split, k)) for k in sorted(done)
                   if not os.path.exists(self.path(split, k))]
        jobs = iter(missing)
        results = runner.run(backfill, jobs) if runner else ((j, backfill(j)) for j in jobs)
        for _ in results:
            pass
        return len(missing)


def backfill(job):
    """Worker: write the index of an existing shard from its record headers."""
    shard, path = job
    try:
        sizes = record_sizes(shard)
    except BadShard as err:
        raise UserError("%s: %s. Delete it and rerun the conversion to rewrite it."
                        % (shard, err))
    try:
        atomic_write(path, lines(sizes))
    except OSError as err:
        raise UserError("cannot write %s: %s" % (path, err.strerror or err))
    return len(sizes)


# --------------------------------------------------------------------------- checks

def check_one(job):
    """Worker: (shard path, index path) -> problem or None.  The index must list
    exactly the shard's records: offsets, framed lengths and count."""
    shard, path = job
    try:
        with open(path, "rb") as f:
            got = f.read()
    except FileNotFoundError:
        return ("%s is missing (the DALI index of %s). Rerun the conversion with the "
                "DALI index option: it writes missing index files without rewriting "
                "shards." % (path, shard))
    except OSError as err:
        return "%s: cannot read: %s" % (path, err.strerror or err)
    try:
        want = lines(record_sizes(shard))
    except BadShard as err:
        return "%s: %s" % (shard, err)
    except OSError as err:
        return "%s: cannot read: %s" % (shard, err.strerror or err)
    if got == want:
        return None
    if got.count(b"\n") != want.count(b"\n"):
        return ("%s lists %d records, %s holds %d. Delete the index file and rerun "
                "the conversion with the DALI index option."
                % (path, got.count(b"\n"), shard, want.count(b"\n")))
    for n, (g, w) in enumerate(zip(got.split(b"\n"), want.split(b"\n"))):
        if g != w:
            return ("%s line %d is %r, the shard has %r there. Delete the index file "
                    "and rerun the conversion with the DALI index option."
                    % (path, n + 1, g.decode("ascii", "replace"), w.decode("ascii")))
    return ("%s is not in DALI's index format (\"OFFSET LENGTH\" lines). Delete it "
            "and rerun the conversion with the DALI index option." % path)


def check(pairs, runner):
    """Check (shard, index) pairs on `runner`; return the problems found."""
    return [p for _, p in runner.run(check_one, iter(pairs)) if p]


def check_dir(root, prefix, shard_paths, runner):
    """verify.sh: when OUT/dali-index/<prefix> exists, every shard present needs a
    matching index file there and nothing else may be there."""
    d = index_dir(root, prefix)
    if not os.path.isdir(d):
        return [], False
    want = {index_name(os.path.basename(p)): p for p in shard_paths}
    problems = []
    for name in sorted(set(os.listdir(d)) - set(want)):
        if name.startswith(".") and name.endswith(".partial"):
            continue
        problems.append("%s: not the index of a shard in this output; remove it"
                        % os.path.join(d, name))
    problems += check(((shard, os.path.join(d, name)) for name, shard in want.items()),
                      runner)
    return problems, True
