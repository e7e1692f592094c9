"""The I/O plan for a copy that cannot be read at an offset (the Hugging Face
parquet and tar.gz copies): each of its files is read once, front to back, and its
images unpacked into a local spool file, from which the conversion then reads them
in place like a release tar's members.

SPOOL/<file>.img holds the images of one file of the copy, back to back;
SPOOL/<file>.idx (written last, atomically, after the images are on disk) lists
them (release name, synset, offset, size, row) with the identity of the file they
came from (local: size, mtime and ctime; gs://: size, generation and CRC32C).  A
file whose .idx is missing or does not match is unpacked again from its start, so a
run killed at any point and rerun gives the same listings and the same shards; an
unchanged file is never read twice.  Memory holds one parquet batch (or one tar
member) at a time; the spool holds the image bytes once, less than the records
written from them.
"""

import hashlib
import json
import os
import sys
import time

from ilsvrc import contract, fsutil, storage
from ilsvrc.errors import UserError
from ilsvrc.progress import Progress
from ilsvrc.sources import hfcopy, remote
from ilsvrc.sources.containers import Slices
from ilsvrc.sources.listing import Listing
from ilsvrc.storage.cache import index_dir

NAME = "ilsvrc-spool"
VERSION = 2


def place(index_file, root, cache_dir=None):
    """The spool directory: beside the index file (default OUT/ilsvrc-spool), else
    in the local cache directory, one per copy."""
    if index_file:
        return os.path.join(os.path.dirname(os.path.abspath(index_file)), NAME)
    digest = hashlib.sha256(root.encode("utf-8")).hexdigest()[:16]
    return os.path.join(index_dir(cache_dir), "%s-%s" % (NAME, digest))


def identity(path):
    """What a same-size edit, a `touch -r` or a re-upload cannot keep the same."""
    if storage.is_remote(path):
        info = storage.store_for(path).stat(path)
        if info is None:
            raise UserError("%s does not exist" % path)
        return [info.size, info.generation, info.crc32c]
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _paths(spool, unit):
    base = os.path.join(spool, unit.split, os.path.basename(unit.path))
    return base + ".img", base + ".idx"


def _load(spool, unit):
    """The recorded part of `unit` when its spool files are whole and it is
    unchanged; else None."""
    img, idx = _paths(spool, unit)
    try:
        with open(idx, "rb") as f:
            part = json.loads(f.read().decode("utf-8"))
        ok = (part.get("version") == VERSION and part["source"] == identity(unit.path)
              and (part.get("drained") or os.path.getsize(img) == part["img_size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return part if ok else None


def listings(source, spool, log=None, fill=True, runner=None):
    """(train, validation) listings of the copy in source.root, reading into the
    spool whatever file of it is not there yet (on `runner`'s workers, a file each;
    fill False: refuse instead)."""
    log = log or sys.stderr
    kind, units = hfcopy.find(source.root, source.kind)
    parts, todo = {}, []
    for unit in units:
        if unit.split != "test":
            parts[unit] = _load(spool, unit)
            if parts[unit] is None:
                todo.append(unit)
    if todo and not fill:
        raise UserError("%s is not unpacked yet (%d of its files), and tasks do not "
                        "unpack it: run the same command once with --index-only (it "
                        "unpacks the copy into %s), then the tasks."
                        % (source.root, len(todo), spool))
    if todo:
        _unpack_all(todo, parts, spool, log, runner)
    for unit, part in parts.items():
        part["_img"], part["_idx"] = _paths(spool, unit)
    if any(part.get("drained") for part in parts.values()):
        log.write("note: the images unpacked into %s were removed when the last run "
                  "completed (their lists are kept); a shard that must be written "
                  "again reads its files of the copy again\n" % spool)
    train, val = _assemble(units, parts)
    skipped = _test_images(units)
    log.write("%s copy in %s: %d training and %d validation images (spool %s)%s\n"
              % (kind, source.root, len(train), len(val), spool,
                 "; %s test images skipped (no labels)" % skipped if skipped else ""))
    return train, val


def _unpack_all(todo, parts, spool, log, runner=None):
    """Unpack the files `todo` (on the workers of `runner` when given: files are
    independent), their parts into `parts`."""
    total = sum(u.size for u in todo)
    log.write("unpacking %d files (%s) of the copy into %s: each is read once\n"
              % (len(todo), _amount(total), spool))
    progress = Progress(max(1, total >> 20), "unpacking", stream=log, unit="MB")
    t0 = time.monotonic()
    jobs = [(unit, spool) for unit in todo]
    results = runner.run(unpack_file, jobs) if runner is not None else \
        ((job, unpack_file(job)) for job in jobs)
    for (unit, _), part in results:
        parts[unit] = part
        for note in part["notes"]:
            log.write("note: %s\n" % note)
        progress.update(unit.size >> 20, unit.size)
    progress.update(0, 0, force=True)
    log.write("unpacked %d files in %.1f s\n" % (len(todo), time.monotonic() - t0))


def unpack_file(job):
    """Worker: read one file of the copy (job: (Unit, spool directory)) front to
    back into its spool files; its part."""
    unit, spool = job
    img, idx = _paths(spool, unit)
    os.makedirs(os.path.dirname(img), exist_ok=True)
    before = identity(unit.path)
    classes = sorted(contract.official_synsets())
    part = {"version": VERSION, "source": before, "unit": list(unit[:2]),
            "names": [], "synsets": [],
            "offsets": [], "sizes": [], "rows": [], "notes": []}
    seen, offset = set(), 0
    try:
        with open(img, "wb") as out:
            for row_no, row in enumerate(hfcopy.rows(unit)):
                got = hfcopy.canonical(row, unit.split, classes)
                if got is not None:
                    offset = _keep(part, seen, got, row, row_no, offset, out)
            out.flush()
            os.fsync(out.fileno())
    except OSError as err:
        raise UserError("cannot write %s: %s. Free space (the spool needs about the "
                        "copy's size) and rerun the same command." % (img, err.strerror))
    if not part["names"]:
        raise UserError("%s holds no %s images. %s." % (unit.path, unit.split,
                                                        hfcopy.REFETCH))
    if identity(unit.path) != before:
        raise UserError("%s changed while it was read: rerun when nothing writes to it"
                        % unit.path)
    part["img_size"] = offset
    fsutil.atomic_write(idx, json.dumps(part, separators=(",", ":")))
    return part


def _keep(part, seen, got, row, row_no, offset, out):
    """Append one checked image to the spool file and its entry to the part; the
    offset after it."""
    name, synset = got
    if name in seen:
        raise UserError("%s: %s appears twice in this file; the copy is damaged. %s."
                        % (row.where, name, hfcopy.REFETCH))
    seen.add(name)
    contract.check_member_size(len(row.data), row.where)
    note = hfcopy.check_special(name, row.data, row.where)
    if note:
        part["notes"].append(note)
    out.write(row.data)
    for key, value in (("names", name), ("synsets", synset), ("offsets", offset),
                       ("sizes", len(row.data)), ("rows", row_no)):
        part[key].append(value)
    return offset + len(row.data)


def _assemble(units, parts):
    """The listings from the parts, in the copy's file order; a name in two files
    is refused."""
    train, val = Listing("train"), Listing("validation")
    val.claims = []
    for unit in units:
        part = parts.get(unit)
        if part is None:
            continue
        lst = train if unit.split == "train" else val
        lst.spool_parts.append(part)
        ci = len(lst.containers)
        lst.containers.append(SpoolFile(part["_img"], part["img_size"],
                                        bool(part.get("drained"))))
        lst.containers[-1].part = part
        for name, synset, off, size in zip(part["names"], part["synsets"],
                                           part["offsets"], part["sizes"]):
            lst.add(name, synset if lst is train else "", ci, off, size)
            if lst is val:
                val.claims.append(synset)
    for lst in (train, val):
        _refuse_duplicates(lst, units, parts)
    return train, val


class SpoolFile(Slices):
    """A spool file, read in place like a release tar; named in a plan by its base
    name and recorded size, so that a plan stays the same once the images are
    removed (drain)."""

    def __init__(self, path, size, drained=False):
        super().__init__(path)
        self.size, self.drained = size, drained

    def __str__(self):
        if not self.drained:
            return self.path
        spool = os.path.dirname(os.path.dirname(self.path))
        return ("%s (removed after the last complete run: remove %s and rerun to unpack "
                "the copy again)" % (self.path, spool))

    def __getstate__(self):
        return self.path, self.size, self.drained

    def __setstate__(self, state):
        (self.path, self.size, self.drained), self._identity = state, None

    def identity(self):
        return os.path.basename(self.path), self.size

    def state(self):
        """The identity of the file of the copy these images came from (what the
        spool's list recorded when it was read)."""
        part = getattr(self, "part", None)
        return list(part["source"]) if part else super().state()


def _refuse_duplicates(lst, units, parts):
    order = sorted(range(len(lst)), key=lst.names.__getitem__)
    for a, b in zip(order, order[1:]):
        if lst.names[a] == lst.names[b]:
            places = [_where(lst, i, units, parts) for i in (a, b)]
            raise UserError("%s and %s both hold %s: the copy holds an image twice. "
                            "Delete the file that does not belong to this download and "
                            "rerun." % (places[0], places[1], lst.names[a]))


def _where(lst, i, units, parts):
    """'<file> row N' of image i of a listing (for messages)."""
    path = lst.containers[lst.container[i]].path
    for unit in units:
        part = parts.get(unit)
        if part is not None and part["_img"] == path:
            k = part["offsets"].index(lst.offset[i])
            what = "row" if unit.path.endswith(".parquet") else "member"
            return "%s %s %d" % (unit.path, what, part["rows"][k])
    return path


def _test_images(units):
    """How many test images the copy holds (from the parquet footers; the tar.gz
    copy's test archive is not read: '?')."""
    tests = [u for u in units if u.split == "test"]
    if not tests:
        return 0
    if not tests[0].path.endswith(".parquet"):
        return "the"
    import pyarrow.parquet as pq
    return sum(pq.ParquetFile(remote.RemoteFile(u.path, u.size, 1 << 20)
                              if storage.is_remote(u.path) else u.path).metadata.num_rows
               for u in tests)


def drain(listings, log=None):
    """After a complete run: remove the spooled images of `listings` (those read
    from a spool), keeping their lists, so that the spool no longer takes the
    copy's size and a rerun still plans without reading the copy again."""
    drain_parts([part for lst in listings for part in lst.spool_parts], log)


def drain_parts(parts, log=None):
    """drain() for these parts (dicts of a spool's lists)."""
    freed = 0
    for part in parts:
        if part.get("drained"):
            continue
        record = {k: v for k, v in part.items() if not k.startswith("_")}
        record["drained"] = True
        fsutil.atomic_write(part["_idx"], json.dumps(record, separators=(",", ":")))
        part["drained"] = True
        try:
            freed += os.path.getsize(part["_img"])
            os.remove(part["_img"])
        except FileNotFoundError:
            pass
    if freed and log is not None:
        log.write("spool: removed the unpacked images (%s; the lists stay, for reruns "
                  "and ./verify.sh --source)\n" % _amount(freed))


def _amount(n):
    return "%.1f GB" % (n / 1e9) if n >= 1e9 else "%.1f MB" % (n / 1e6)


def refill(containers, log=None):
    """Unpack again the files of the copy whose spooled images `containers` (some
    SpoolFiles among them) were removed by drain; the same bytes land at the same
    offsets, so plans made from the lists stay valid.  Returns the SpoolFiles
    refilled."""
    log = log or sys.stderr
    drained = [c for c in containers if isinstance(c, SpoolFile) and c.drained]
    if not drained:
        return []
    units = []
    for c in drained:
        split, path = c.part["unit"]
        units.append(hfcopy.Unit(split, path, identity(path)[0]))
    spool = os.path.dirname(os.path.dirname(drained[0].path))
    parts = {}
    _unpack_all(units, parts, spool, log)
    for c, unit in zip(drained, units):
        new = parts[unit]
        if new["img_size"] != c.size or new["names"] != c.part["names"]:
            raise UserError("%s changed since it was listed: rerun the same command"
                            % unit.path)
        c.part.pop("drained", None)
        c.drained = False
    return drained
