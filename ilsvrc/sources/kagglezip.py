"""The Kaggle copy (competition imagenet-object-localization-challenge) as a source.

Two forms are read:
  * the unpacked tree: `ILSVRC/Data/CLS-LOC/train/<synset>/*.JPEG` and
    `ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_%08d.JPEG` (flat), as metalhead/prepare.py
    lays it out;
  * the downloaded zip `imagenet-object-localization-challenge.zip` in place, when it
    holds `ILSVRC/...` directly: members are found through the zip's central directory
    (parsed here into compact columns, ZIP64 included); containers.ZipMembers reads
    each image through its central-directory record and local header, inflates it
    (bounded by the central directory's size) and checks it against the central
    directory's CRC-32 and size whatever the writer's flags.
Older zips that wrap everything in a .tar.gz cannot be read in place (a gzip stream has
no random access): metalhead/prepare.py unpacks them once.
"""

import fnmatch
import os
import struct

from ilsvrc import contract, fsutil
from ilsvrc.sources.containers import ZipMembers, zip64_sizes, zip_damaged
from ilsvrc.errors import UserError
from ilsvrc.sources.listing import IMAGE_PATTERN, Listing

ZIP_NAME = "imagenet-object-localization-challenge.zip"
CLS_LOC = ("ILSVRC", "Data", "CLS-LOC")
# the copy's validation labels and its synset list, read by sources/val_labels.py
SOLUTION, MAPPING = "LOC_val_solution.csv", "LOC_synset_mapping.txt"
SIDE_FILES = (SOLUTION, MAPPING)


def find_tree(raw_dir):
    """(train_dir, val_dir) of a Kaggle tree under raw_dir, or None."""
    for base in (os.path.join(raw_dir, *CLS_LOC), os.path.join(raw_dir, *CLS_LOC[1:])):
        if os.path.isdir(os.path.join(base, "train")) or os.path.isdir(os.path.join(base, "val")):
            return os.path.join(base, "train"), os.path.join(base, "val")
    return None


def find_zip(raw_dir):
    path = os.path.join(raw_dir, ZIP_NAME)
    return path if os.path.isfile(path) else None


# --------------------------------------------------------------------------- zip index

_EOCD, _EOCD64_LOC, _EOCD64 = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"


def _central_directory(f, path):
    """(offset, size, entries) of the central directory."""
    end = os.fstat(f.fileno()).st_size
    tail_len = min(end, 65536 + 22)
    tail = os.pread(f.fileno(), tail_len, end - tail_len)
    at = tail.rfind(_EOCD)
    if at < 0:
        raise zip_damaged(path, "not a zip file, or truncated (no end-of-central-directory record)")
    entries, cd_size, cd_off = struct.unpack_from("<HII", tail, at + 10)
    loc = tail.rfind(_EOCD64_LOC, 0, at)
    if loc >= 0 and at - loc == 20:
        (eocd64,) = struct.unpack_from("<Q", tail, loc + 8)
        rec = os.pread(f.fileno(), 56, eocd64)
        if rec[:4] != _EOCD64:
            raise zip_damaged(path, "broken ZIP64 end record")
        entries, cd_size, cd_off = struct.unpack_from("<QQQ", rec, 32)
    if cd_off + cd_size > end:
        raise zip_damaged(path, "truncated (the central directory lies past the end of the file)")
    return cd_off, cd_size, entries


def _entries(f, path):
    """Yield (name, central_record_offset, compressed_size) of every member."""
    cd_off, cd_size, _ = _central_directory(f, path)
    buf, at = b"", 0            # unread central-directory bytes are buf[at:]
    pos, end = cd_off, cd_off + cd_size

    def fill(need):
        nonlocal buf, at, pos
        while len(buf) - at < need and pos < end:
            chunk = os.pread(f.fileno(), min(1 << 22, end - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            buf, at = buf[at:] + chunk, 0
        return len(buf) - at >= need

    while fill(1):
        if not fill(46) or buf[at:at + 4] != _CENTRAL:
            raise zip_damaged(path, "corrupt central directory")
        csize, usize, nlen, xlen, clen = struct.unpack_from("<IIHHH", buf, at + 20)
        (offset,) = struct.unpack_from("<I", buf, at + 42)
        rec_len = 46 + nlen + xlen + clen
        if not fill(rec_len):
            raise zip_damaged(path, "corrupt central directory")
        name = buf[at + 46:at + 46 + nlen].decode("utf-8", "replace")
        if 0xFFFFFFFF in (csize, usize, offset):
            usize, csize, offset = zip64_sizes(buf[at + 46 + nlen:at + 46 + nlen + xlen],
                                                usize, csize, offset)
        yield name, pos - (len(buf) - at), csize
        at += rec_len


def zip_members(path):
    """Yield (name, offset, compressed_size) of every member of a zip; `offset` is
    that of the member's central-directory record, which containers.ZipMembers reads
    (the central directory is the authority on a member's CRC-32 and sizes)."""
    try:
        f = open(path, "rb")
    except OSError as err:
        raise UserError("cannot open %s: %s" % (path, err.strerror))
    with f:
        yield from _entries(f, path)


ANNOTATIONS = ("ILSVRC", "Annotations", "CLS-LOC", "train")


def find_annotations(raw_dir):
    """Source of the training box XMLs in a Kaggle copy under raw_dir, or None:
    the unpacked `ILSVRC/Annotations/CLS-LOC/train` directory, else the zip."""
    tree = os.path.join(raw_dir, *ANNOTATIONS)
    if os.path.isdir(tree):
        return tree
    return find_zip(raw_dir)


def side_file(found, name, offset, csize):
    """Record the member `name` in `found` when it is one of SIDE_FILES and the
    shallowest such member so far."""
    base = name.rsplit("/", 1)[-1]
    if base in SIDE_FILES and (base not in found
                               or name.count("/") < found[base][0].count("/")):
        found[base] = (name, offset, csize)


def index_zip(path):
    """(train Listing, val Listing) of a Kaggle zip holding ILSVRC/ directly; the
    validation listing's `side_files` records where the LOC_* label files are, from
    the same walk of the central directory."""
    train, val = Listing("train"), Listing("validation")
    train.containers = val.containers = [ZipMembers(path)]
    val.side_files = {}
    marker = "/".join(CLS_LOC) + "/"
    wrapped = None
    seen = set()
    for name, offset, csize in zip_members(path):
        side_file(val.side_files, name, offset, csize)
        if name.endswith(".tar.gz"):
            wrapped = name
        at = name.find(marker)
        if at < 0 or name.endswith("/"):
            continue
        if fsutil.escapes(name):
            raise UserError("%s: member '%s' has an absolute path or '..'; refusing "
                            "it." % (path, name))
        if name in seen:
            raise UserError("%s: member '%s' appears twice" % (path, name))
        seen.add(name)
        _add_member(train, val, path, name, name[at + len(marker):].split("/"), offset,
                    csize)
    if not len(train) and not len(val):
        if wrapped:
            raise UserError("%s holds %s, which cannot be read in place: run "
                            "metalhead/prepare.py %s --out DIR, then convert DIR."
                            % (path, wrapped, path))
        raise UserError("%s holds no ILSVRC/Data/CLS-LOC/ images; is it the Kaggle "
                        "imagenet-object-localization-challenge archive?" % path)
    return train, val


def _add_member(train, val, path, name, parts, offset, csize):
    """File the member `name` (`parts`: its path below CLS-LOC/) in its listing."""
    if parts[0] not in ("train", "val"):
        return                         # test/ and the rest: not converted
    is_jpeg = fnmatch.fnmatchcase(parts[-1], IMAGE_PATTERN)
    if parts[0] == "train" and len(parts) == 3 and is_jpeg:
        contract.check_class_name(parts[1], "%s: %s" % (path, "/".join(
            name.split("/")[:-1]) + "/"))
        train.add(parts[2], parts[1], 0, offset, csize)
    elif parts[0] == "val" and len(parts) == 2 and is_jpeg:
        val.add(parts[1], "", 0, offset, csize)
    elif is_jpeg or contract.IMAGE_LIKE.fullmatch(parts[-1]):
        raise UserError("%s: member '%s' is not where the Kaggle copy keeps its images "
                        "(train/<synset>/*.JPEG, val/*.JPEG), so it would be left "
                        "out. Use the original Kaggle archive." % (path, name))
