"""Bounding boxes: ILSVRC2012 annotation XMLs -> TF-slim's CSV.

One CSV line per kept box, `<image>.JPEG,xmin,ymin,xmax,ymax`, coordinates relative to
the annotated image size, `%.4f`.  The rules follow upstream's process_bounding_boxes.py,
quirks included (decision A9, kept for identical output):
  * the k-th `xmin`/`ymin`/`xmax`/`ymax` element anywhere in the document makes box k,
    counting stops at the first missing `xmin` (or one whose value is -1);
  * the image size is the first `width`/`height`; the label of every box is the first
    `name` (object 0's), so a synset filter keeps or drops a file's boxes together;
  * swapped corners are put in order, coordinates are clamped into [0, 1], boxes with
    no area left are dropped;
  * the image name is the XML file's own name, never its `filename` tag.
Differences: a malformed file (bad XML, a missing or non-integer coordinate, a size
that is not positive) stops the run with a message naming it, where upstream crashed
or silently dropped the boxes; a missing `filename` tag (unused) is tolerated.

Annotations are read from the extracted directory (`DIR/<synset>/*.xml`) or straight
from the archive `ILSVRC2012_bbox_train_v2.tar.gz`, streamed, never extracted.
"""

import fnmatch
import gzip
import os
import sys
import tarfile
import zlib
from xml.etree import ElementTree

from ilsvrc import fsutil, storage
from ilsvrc.errors import UserError
from ilsvrc.progress import Progress
from ilsvrc.sources import containers, kagglezip, remote

ARCHIVE = "ILSVRC2012_bbox_train_v2.tar.gz"
CSV_NAME = "imagenet_2012_bounding_boxes.csv"
FILES = "annotation files"


def _nth_text(root, tag, k):
    """(found, text) of the k-th `tag` element in document order."""
    for n, elem in enumerate(root.iter(tag)):
        if n == k:
            return True, elem.text
    return False, None


def _int(root, tag, k, where):
    """The k-th `tag` as an int, None when there is no such element."""
    found, text = _nth_text(root, tag, k)
    if not found:
        return None
    try:
        return int(text)
    except (TypeError, ValueError):
        raise UserError("%s: <%s> number %d is '%s', not an integer. Fix or remove the "
                        "file." % (where, tag, k + 1, (text or "").strip()))


def parse(data, where):
    """(width, height, label, [(xmin, ymin, xmax, ymax) ints]) of one annotation."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as err:
        raise UserError("%s: not well-formed XML (%s). Fix or remove the file." % (where, err))
    corners = []
    while True:
        k = len(corners)
        xmin = _int(root, "xmin", k, where)
        if xmin is None or xmin == -1:
            break
        rest = [_int(root, tag, k, where) for tag in ("ymin", "xmax", "ymax")]
        if None in rest:
            raise UserError("%s: box %d has an xmin but no ymin, xmax or ymax. Fix or "
                            "remove the file." % (where, k + 1))
        corners.append((xmin,) + tuple(rest))
    width = height = None
    if corners:  # like upstream, the size is only read for files with boxes
        width, height = _int(root, "width", 0, where), _int(root, "height", 0, where)
        if not (width and height and width > 0 and height > 0):
            raise UserError("%s: the image size (<width>, <height>) is missing or not "
                            "positive, so its boxes cannot be scaled. Fix or remove the "
                            "file." % where)
    return width, height, _nth_text(root, "name", 0)[1], corners


def scale(corners, width, height):
    """Relative (xmin, ymin, xmax, ymax): corners ordered and clamped into [0, 1]."""
    out = []
    for xmin, ymin, xmax, ymax in corners:
        xs = sorted((xmin / width, xmax / width))
        ys = sorted((ymin / height, ymax / height))
        xs = [min(max(v, 0.0), 1.0) for v in xs]
        ys = [min(max(v, 0.0), 1.0) for v in ys]
        out.append((xs[0], ys[0], xs[1], ys[1]))
    return out


# --------------------------------------------------------------------------- inputs

def _is_annotation(relpath):
    """`<dir>/<file>.xml` one level down, no dot-names (Python glob `*/*.xml`)."""
    parts = relpath.split("/")
    return (len(parts) == 2 and not any(p.startswith(".") or not p for p in parts)
            and fnmatch.fnmatchcase(parts[1], "*.xml"))


def _reading(what, log, total, unit, second=None):
    """The progress of reading the annotations of `what`."""
    return Progress(total, "bounding boxes: reading %s" % what, stream=log, unit=unit,
                    second=second)


def _from_dir(directory, log):
    try:
        subdirs = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    except OSError as err:
        raise UserError("cannot list %s: %s" % (directory, err.strerror))
    progress = _reading(directory, log, len(subdirs), "folders", (None, FILES))
    for sub in subdirs:
        names = sorted(e.name for e in os.scandir(os.path.join(directory, sub))
                       if e.is_file())
        for name in names:
            if _is_annotation(sub + "/" + name):
                path = os.path.join(directory, sub, name)
                yield sub, name, path, lambda path=path: _read_file(path)
                progress.update(0, second=1)
        progress.update(1)
    progress.finish()


def _read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise UserError("cannot read %s: %s" % (path, err.strerror))


class _Tracked:
    """A read-only stream that counts the bytes read through it and where the last
    non-zero byte was, so the tar's end-of-archive marker can be proven afterwards."""

    def __init__(self, f):
        self._f, self.pos, self.data_end = f, 0, 0

    def read(self, n=-1):
        chunk = self._f.read(n)
        if chunk:
            tail = len(chunk.rstrip(b"\0"))
            if tail:
                self.data_end = self.pos + tail
            self.pos += len(chunk)
        return chunk

    def drain(self):
        while self.read(1 << 20):
            pass


class _Counted:
    """The archive's own (compressed) bytes, counted as they are read: how far
    through it the reading is."""

    def __init__(self, f):
        self._f, self.count = f, 0

    def read(self, n=-1):
        chunk = self._f.read(n)
        self.count += len(chunk)
        return chunk

    def peek(self, n=0):
        return self._f.peek(n)


def _open_raw(path):
    """(the archive's bytes, its size): a local file, or (gs://) streamed from the
    bucket 8 MB a request, behind a buffer so the gzip magic can be peeked."""
    if path.startswith("gs://"):
        info = storage.store_for(path).stat(path)
        size = info.size if info is not None else None
        return remote.open_stream(path, block=8 << 20, size=size), size
    f = open(path, "rb")
    return f, os.fstat(f.fileno()).st_size


def _open_stream(raw):
    """The decompressed stream of a .tar.gz (or plain .tar) opened as `raw`."""
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    return gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw


def _from_archive(path, log):
    """Stream the annotations of a tar(.gz), then prove it complete: the gzip stream
    is read to its trailer (CRC and length) and the tar must end with its
    end-of-archive marker; tarfile alone stops quietly where the data stops."""
    seen = set()
    try:
        opened, size = _open_raw(path)
        with opened:
            raw = _Counted(opened)
            progress = _reading(os.path.basename(path), log, size, "bytes", (None, FILES))
            stream = _Tracked(_open_stream(raw))
            tar = tarfile.open(fileobj=stream, mode="r|")
            for info in tar:
                name = fsutil.strip_dot_slash(info.name)
                if not info.isreg() or not _is_annotation(name):
                    continue
                if name in seen:
                    raise UserError("%s: member %s appears twice; get a clean copy of "
                                    "the archive." % (path, name))
                seen.add(name)
                data = tar.extractfile(info).read()
                sub, base = name.split("/")
                yield sub, base, "%s: %s" % (path, name), lambda data=data: data
                progress.update(raw.count - progress.done, second=1)
            end = tar.offset
            stream.drain()
            progress.update(raw.count - progress.done)
            progress.finish()
            if stream.pos - end < 1024 or stream.data_end > end:
                raise UserError("%s: truncated or damaged: the tar has no end-of-archive "
                                "marker after its last complete member (byte %d). Get a "
                                "complete copy." % (path, end))
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise UserError("%s: cannot be read as a (compressed) tar archive (%s). Get a "
                        "complete copy." % (path, err or type(err).__name__))
    except OSError as err:
        raise UserError("cannot read %s: %s. Get a complete copy."
                        % (path, err.strerror or err))


def _from_zip(path, log):
    """Training XMLs of a Kaggle zip: members under ILSVRC/Annotations/CLS-LOC/train/."""
    archive, reader = containers.ZipMembers(path), containers.Reader()
    marker = "/".join(kagglezip.ANNOTATIONS) + "/"
    found = []
    for name, offset, csize in kagglezip.zip_members(path):
        at = name.find(marker)
        if at >= 0 and _is_annotation(name[at + len(marker):]):
            found.append((name[at + len(marker):], offset, csize))
    progress = _reading(os.path.basename(path), log, len(found), FILES)
    for rel, offset, csize in sorted(found):
        sub, base = rel.split("/")
        yield (sub, base, "%s: %s" % (path, rel),
               lambda o=offset, c=csize: reader.read(archive, o, c))
        progress.update(1, csize)
    progress.finish()


def annotations(source, log=None):
    """Yield (dir_label, xml_name, where, read) from a directory, a .tar.gz or the
    Kaggle zip; progress lines (how much is read, ETA) on `log` (stderr)."""
    log = log or sys.stderr
    if os.path.isdir(source):
        return _from_dir(source, log)
    if source.endswith(".zip") and os.path.isfile(source):
        return _from_zip(source, log)
    if os.path.isfile(source) or source.startswith("gs://"):   # a bucket: streamed
        return _from_archive(source, log)
    raise UserError("%s does not exist: give the annotation directory (<synset>/*.xml) "
                    "or the archive %s" % (source, ARCHIVE))


# --------------------------------------------------------------------------- the CSV

def csv_lines(source, synsets=None, log=sys.stderr):
    """Yield the CSV lines (without newline) of every kept box; statistics on `log`.

    `synsets`: optional set; files in other directories are skipped, and boxes whose
    label is another synset of the set are dropped (non-synset labels are kept).
    """
    stats = dict(files=0, skipped_files=0, skipped_boxes=0, boxes=0, images=0)
    for dir_label, name, where, read in annotations(source, log):
        stats["files"] += 1
        if synsets is not None and dir_label not in synsets:
            stats["skipped_files"] += 1
            continue
        width, height, label, corners = parse(read(), where)
        stem = os.path.splitext(name)[0]
        wrong_label = synsets is not None and label != dir_label and label in synsets
        written = 0
        for xmin, ymin, xmax, ymax in scale(corners, width, height):
            if wrong_label or xmin >= xmax or ymin >= ymax:
                stats["skipped_boxes"] += 1
                continue
            written += 1
            yield "%s.JPEG,%.4f,%.4f,%.4f,%.4f" % (stem, xmin, ymin, xmax, ymax)
        stats["boxes"] += written
        stats["images" if written else "skipped_files"] += 1
    log.write("bounding boxes: %(files)d annotation files, %(skipped_files)d skipped "
              "(other synset or no box kept), %(skipped_boxes)d boxes skipped; "
              "%(boxes)d boxes written for %(images)d images\n" % stats)
    log.flush()


def write_csv(source, out_path, synsets=None, log=sys.stderr):
    """Write the CSV sorted in code-point order (= `LC_ALL=C sort`) to out_path, atomically."""
    lines = sorted(csv_lines(source, synsets, log))
    try:
        with fsutil.partial_file(out_path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(line + "\n" for line in lines)
    except OSError as err:
        raise UserError("cannot write %s: %s" % (out_path, err.strerror or err))
    return len(lines)
