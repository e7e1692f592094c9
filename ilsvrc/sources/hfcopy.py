"""The Hugging Face copy of ILSVRC2012 (`ILSVRC/imagenet-1k`): where its files are,
and its images read front to back, each checked against the release's contract.

Two layouts of the same repository:
  parquet   data/{train,validation,test}-NNNNN-of-NNNNN.parquet, rows
            (image: struct<bytes, path>, label: int64), shuffled across the files
  hf-tar    data/train_images_{0..4}.tar.gz, data/val_images.tar.gz (and
            data/test_images.tar.gz), flat members
Either way an image is named as in the release with `_<wnid>` put before `.JPEG`
(`n01440764_10026_n01440764.JPEG`, `ILSVRC2012_val_00000001_n01751748.JPEG`); test
images carry no synset (label -1) and are skipped.  Neither layout can be read at an
offset cheaply, so a conversion reads each file once, front to back (spool.py).

Every image is checked before it is kept: its name (the release's name with the
suffix), its synset three ways (the suffix, the name's own synset for training
images, the `label` column's index in the sorted 1000 synsets; the validation
label file is the third check for validation images, val_labels.check_claims), and
the actual format of the release's special images (one PNG, 22 CMYK JPEGs).
"""

import gzip
import os
import re
import tarfile
from typing import NamedTuple

from ilsvrc import contract, fsutil, storage
from ilsvrc.errors import UserError
from ilsvrc.records import image, jpeg
from ilsvrc.sources import remote

KINDS = ("parquet", "hf-tar")
SPLITS = ("train", "validation", "test")
PARQUET = re.compile(r"(train|validation|test)-(\d{5})-of-(\d{5})\.parquet")
TGZ = {"train": ["train_images_%d.tar.gz" % i for i in range(5)],
       "validation": ["val_images.tar.gz"], "test": ["test_images.tar.gz"]}
TRAIN_NAME = re.compile(r"(n\d{8})_(\d+)_(n\d{8})\.JPEG")
VAL_NAME = re.compile(r"(ILSVRC2012_val_\d{8})_(n\d{8})\.JPEG")
TEST_NAME = re.compile(r"ILSVRC2012_test_\d{8}\.JPEG")
PAGE = "https://huggingface.co/datasets/ILSVRC/imagenet-1k"
REFETCH = "Delete it and rerun ./download.sh hf DIR to fetch it again"


class Unit(NamedTuple):
    """One file of the copy: its split ("train", "validation", "test"), path and size."""
    split: str
    path: str
    size: int


def data_dir(raw_dir):
    """Where the copy's files are: DIR/data, else DIR itself."""
    sub = storage.join(raw_dir, "data")
    if storage.is_remote(raw_dir):
        return sub if storage.store_for(sub).list(sub + "/") else raw_dir
    return sub if os.path.isdir(sub) else raw_dir


def _files(folder):
    """{base name: size} of the files directly in `folder` (local or gs://)."""
    if storage.is_remote(folder):
        prefix = folder.rstrip("/") + "/"
        return {i.path[len(prefix):]: i.size for i in storage.store_for(folder).list(prefix)
                if "/" not in i.path[len(prefix):]}
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    return {n: os.path.getsize(os.path.join(folder, n)) for n in names
            if os.path.isfile(os.path.join(folder, n))}


def find(raw_dir, kind="auto"):
    """(kind, [Unit]) of the copy in raw_dir, or None when none is there (kind
    "auto": parquet first).  An incomplete set of files is refused."""
    folder = data_dir(raw_dir)
    files = _files(folder)
    if kind in ("auto", "parquet") and any(PARQUET.fullmatch(n) for n in files):
        return "parquet", _parquet_units(folder, files)
    if kind in ("auto", "hf-tar") and any(n in files for n in sum(TGZ.values(), [])):
        return "hf-tar", _tgz_units(folder, files)
    return None


def _parquet_units(folder, files):
    found = {}
    for name in sorted(files):
        m = PARQUET.fullmatch(name)
        if m:
            found.setdefault(m.group(1), {}).setdefault(int(m.group(3)), []).append(
                (int(m.group(2)), name))
    units = []
    for split in SPLITS:
        if split not in found:
            if split != "test":
                raise UserError("%s holds no %s-*.parquet files: the copy is incomplete. "
                                "Rerun ./download.sh hf %s (it fetches train and "
                                "validation)." % (folder, split, os.path.dirname(folder)))
            continue
        if len(found[split]) > 1:
            raise UserError("%s holds %s parquet files of different sets (%s): keep the "
                            "files of one download only." % (
                                folder, split, " and ".join("-of-%05d" % n
                                                            for n in found[split])))
        (total, parts), = found[split].items()
        missing = sorted(set(range(total)) - {k for k, _ in parts})
        if missing:
            raise UserError("missing %s: the copy is incomplete (%d of %d %s files). "
                            "Rerun ./download.sh hf to finish it."
                            % (storage.join(folder, "%s-%05d-of-%05d.parquet"
                                            % (split, missing[0], total)),
                               len(parts), total, split))
        units.extend(Unit(split, storage.join(folder, n), files[n]) for _, n in parts)
    return units


def _tgz_units(folder, files):
    units = []
    for split in SPLITS:
        names = TGZ[split]
        have = [n for n in names if n in files]
        if split == "test" and not have:
            continue
        if len(have) != len(names):
            missing = [n for n in names if n not in files]
            raise UserError("missing %s: the Hugging Face tar.gz copy has %s. Get the "
                            "missing file (./download.sh hf --revision REV %s)."
                            % (storage.join(folder, missing[0]), ", ".join(names),
                               os.path.dirname(folder)))
        units.extend(Unit(split, storage.join(folder, n), files[n]) for n in names)
    return units


# --------------------------------------------------------------------------- names

class Row(NamedTuple):
    """One image as the copy gives it: where (file and row or member, for messages),
    its name there, its label column (None: the layout has none) and its bytes."""
    where: str
    name: str
    label: object
    data: bytes


def canonical(row, split, classes):
    """(release name, synset) of a training or validation row, or None for a test
    image; UserError naming the row when its name, suffix and label disagree."""
    base = row.name.rsplit("/", 1)[-1]      # a parquet path may carry a folder
    if TEST_NAME.fullmatch(base) and row.label in (None, -1):
        return None
    rule = TRAIN_NAME if split == "train" else VAL_NAME
    m = rule.fullmatch(base)
    if not m:
        example = ("n01440764_10026_n01440764.JPEG" if split == "train"
                   else "ILSVRC2012_val_00000001_n01751748.JPEG")
        raise UserError("%s: '%s' is not a %s image name of the Hugging Face copy (like "
                        "%s): the file is not from ILSVRC/imagenet-1k. %s."
                        % (row.where, row.name[:80], split, example,
                           REFETCH))
    synset = m.group(m.lastindex)
    if split == "train" and m.group(1) != synset:
        raise UserError("%s: '%s' names synset %s but carries the suffix %s. %s."
                        % (row.where, row.name, m.group(1), synset, REFETCH))
    contract.check_known(synset, "%s: '%s'" % (row.where, row.name))
    if row.label is not None and (not 0 <= row.label < len(classes)
                                  or classes[row.label] != synset):
        said = classes[row.label] if 0 <= row.label < len(classes) else "no synset"
        raise UserError("%s: '%s' has label %d, which is %s, not %s. %s."
                        % (row.where, row.name, row.label, said, synset,
                           REFETCH))
    name = (m.group(1) + "_" + m.group(2) if split == "train" else m.group(1)) + ".JPEG"
    return name, synset


def check_special(name, data, where):
    """Note (or None) when one of the release's special images (the PNG, the CMYK
    JPEGs) is not in the format the release has it in: its record is then
    re-encoded from these bytes and differs from a conversion of the release tars."""
    kind = image.special_kind(name)
    if kind is None:
        return None
    if kind == "png":
        ok, want = data[:8] == image.PNG_MAGIC, "a PNG"
    else:
        try:
            ok = jpeg.header_info(data)[2] == 4
        except jpeg.BadImage:
            ok = False
        want = "a CMYK JPEG"
    if ok:
        return None
    return ("%s: %s is %s in the release but not in this copy; its record is "
            "re-encoded from these bytes, so it differs from the release tars' record"
            % (where, name, want))


# --------------------------------------------------------------------------- reading

def _open(unit, seekable=False):
    """The file, to read front to back (parquet: seekable, for its footer)."""
    if storage.is_remote(unit.path):
        if seekable:
            return remote.RemoteFile(unit.path, size=unit.size, block=8 << 20)
        return remote.open_stream(unit.path, size=unit.size)
    try:
        return open(unit.path, "rb")
    except OSError as err:
        raise UserError("cannot open %s: %s" % (unit.path, err.strerror or err))


def rows(unit):
    """The rows of one file of the copy, front to back (each read once)."""
    if unit.path.endswith(".parquet"):
        return _parquet_rows(unit)
    return _tgz_rows(unit)


def _parquet_rows(unit):
    try:
        import pyarrow.parquet as pq
        import pyarrow as pa
    except ImportError:
        raise UserError("reading the Hugging Face parquet copy needs pyarrow: run "
                        "./setup.sh --hf")
    with _open(unit, seekable=True) as f:
        try:
            pf = pq.ParquetFile(f, pre_buffer=False)   # else it keeps what it read
        except (pa.ArrowException, OSError) as err:
            raise UserError("%s: not a readable parquet file (%s). %s."
                            % (unit.path, _one_line(err), REFETCH))
        _check_schema(pf.schema_arrow, unit.path, pa)
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=64, columns=["image", "label"]):
                images, labels = batch.column(0), batch.column(1).to_pylist()
                paths = images.field("path").to_pylist()
                datas = images.field("bytes")
                for i, label in enumerate(labels):
                    data = datas[i].as_py()
                    yield Row("%s row %d" % (unit.path, row), paths[i] or "",
                              -2 if label is None else label, data or b"")
                    row += 1
        except (pa.ArrowException, OSError) as err:
            raise UserError("%s: damaged at row %d (%s). %s."
                            % (unit.path, row, _one_line(err), REFETCH))
        finally:
            pa.default_memory_pool().release_unused()   # memory bounded file to file


def _one_line(err):
    return " ".join(str(err).split()) or type(err).__name__


def _check_schema(schema, path, pa):
    want = "image: struct<bytes: binary, path: string>, label: int64"
    try:
        img, label = schema.field("image").type, schema.field("label").type
        ok = (pa.types.is_struct(img) and pa.types.is_binary(img.field("bytes").type)
              and pa.types.is_string(img.field("path").type)
              and pa.types.is_integer(label))
    except KeyError:
        ok = False
    if not ok:
        raise UserError("%s: columns are (%s), not the Hugging Face copy's (%s): the "
                        "file is not from ILSVRC/imagenet-1k." % (
                            path, ", ".join("%s: %s" % (f.name, f.type) for f in schema),
                            want))


def _tgz_rows(unit):
    with _open(unit) as raw:
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz, \
                    tarfile.open(fileobj=gz, mode="r|") as tar:
                for info in tar:
                    yield _member(tar, info, unit)
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as err:
            if isinstance(err, UserError):
                raise
            raise UserError("%s: not a complete tar.gz (%s). %s."
                            % (unit.path, _one_line(err), REFETCH))


def _member(tar, info, unit):
    name = fsutil.strip_dot_slash(info.name)
    where = "%s: %s" % (unit.path, name)
    if not info.isreg() or "/" in name:
        raise UserError("%s is not a plain image file at the top of the archive; the "
                        "Hugging Face copy holds only flat *.JPEG members. %s."
                        % (where, REFETCH))
    contract.check_member_size(info.size, where)
    data = tar.extractfile(info).read()
    if len(data) != info.size:
        raise UserError("%s: truncated. %s." % (where, REFETCH))
    return Row(where, name, None, data)
