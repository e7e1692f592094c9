"""Bad-input corpus, the Kaggle copy (`./build.sh DIR` on the zip read in place or the
unpacked tree, `metalhead/prepare.py`): exit status, the one-line message, records."""

import io
import os
import struct
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO
from contract_helpers import (TRAIN_TAR, VAL_TAR, build, members_of, one_line_error,
                              read_records, shard_files)
from ilsvrc.errors import UserError

CLS = "ILSVRC/Data/CLS-LOC"
ZIP = "imagenet-object-localization-challenge.zip"


def release_files(src):
    """(Kaggle member name, bytes) of every image of the sample release."""
    out = []
    for name, inner in members_of(os.path.join(src, TRAIN_TAR)):
        for img, payload in members_of(inner):
            out.append(("%s/train/%s/%s" % (CLS, name[:-4], img), payload))
    for name, payload in members_of(os.path.join(src, VAL_TAR)):
        out.append(("%s/val/%s" % (CLS, name), payload))
    return out


class _Unseekable(io.RawIOBase):
    """A write-only stream without seek: zipfile then writes data descriptors
    (general-purpose flag bit 3) and zero CRC/sizes in the local headers."""

    def __init__(self, f):
        self._f = f

    def writable(self):
        return True

    def write(self, b):
        return self._f.write(b)


def write_zip(path, files, descriptors=False, compression=zipfile.ZIP_STORED):
    with open(path, "wb") as raw:
        target = _Unseekable(raw) if descriptors else raw
        with zipfile.ZipFile(target, "w", compression) as z:
            for name, payload in files:
                z.writestr(name, payload)


def kaggle_dir(sample_release, tmp_path, files=None, **kw):
    src, manifest = sample_release
    d = tmp_path / "kaggle"
    d.mkdir()
    write_zip(d / ZIP, release_files(src) if files is None else files, **kw)
    (d / "synset_labels.txt").write_bytes(
        open(os.path.join(src, "synset_labels.txt"), "rb").read())
    return str(d), manifest


def _central_records(data):
    """{name: offset of its central-directory record}."""
    end = data.rfind(b"PK\x05\x06")
    count, _, cd = struct.unpack_from("<HII", data, end + 10)
    out, pos = {}, cd
    for _ in range(count):
        nlen, xlen, clen = struct.unpack_from("<HHH", data, pos + 28)
        out[data[pos + 46:pos + 46 + nlen].decode()] = pos
        pos += 46 + nlen + xlen + clen
    return out


def _local_data(data, cd):
    """Offset of a member's data from its central record."""
    (local,) = struct.unpack_from("<I", data, cd + 42)
    nlen, xlen = struct.unpack_from("<HH", data, local + 26)
    return local + 30 + nlen + xlen


def patch_zip(path, name, edit):
    data = bytearray(open(path, "rb").read())
    edit(data, _central_records(bytes(data))[name])
    open(path, "wb").write(bytes(data))


def a_val_member(manifest):
    return "%s/val/ILSVRC2012_val_00000002.JPEG" % CLS


@pytest.mark.parametrize("descriptors", [False, True])
def test_flipped_byte_in_a_zip_member_is_caught_whatever_the_flags(sample_release, tmp_path,
                                                                   descriptors):
    """upstream engine skipped the CRC when the writer used data descriptors."""
    d, manifest = kaggle_dir(sample_release, tmp_path, descriptors=descriptors)
    path = os.path.join(d, ZIP)
    name = a_val_member(manifest)

    def flip(data, cd):
        if descriptors:
            assert struct.unpack_from("<H", data, cd + 8)[0] & 0x08
        data[_local_data(bytes(data), cd) + 200] ^= 0x01
    patch_zip(path, name, flip)
    out = str(tmp_path / "out")
    one_line_error(build(d, out), "build.sh", ZIP, "CRC-32 mismatch")
    names = [n for n, _, _ in read_records(shard_files(out), _tf())]
    assert "ILSVRC2012_val_00000002.JPEG" not in names


def _tf():
    from ilsvrc.tfimport import tensorflow
    return tensorflow()


def test_member_claiming_a_huge_size_is_refused_unread(sample_release, tmp_path):
    """A bomb (3 MB that inflates to 3 GiB) must not be inflated whole in a worker."""
    d, manifest = kaggle_dir(sample_release, tmp_path, compression=zipfile.ZIP_DEFLATED)
    patch_zip(os.path.join(d, ZIP), a_val_member(manifest),
              lambda data, cd: struct.pack_into("<I", data, cd + 24, 3 << 30))
    out = str(tmp_path / "out")
    one_line_error(build(d, out), "build.sh", ZIP, "claims %d bytes" % (3 << 30),
                   "refused unread")


def test_member_inflating_past_its_central_size_is_refused(sample_release, tmp_path):
    d, manifest = kaggle_dir(sample_release, tmp_path, compression=zipfile.ZIP_DEFLATED)
    patch_zip(os.path.join(d, ZIP), a_val_member(manifest),
              lambda data, cd: struct.pack_into("<I", data, cd + 24, 100))
    out = str(tmp_path / "out")
    one_line_error(build(d, out), "build.sh", ZIP, "inflates to more than the 100 bytes")


def test_bounded_inflate_stops_at_the_bound(tmp_path):
    """The bound is enforced while inflating: at most size + 1 bytes are produced."""
    from ilsvrc.sources import containers, kagglezip
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", b"\0" * (8 << 20))
    data = bytearray(path.read_bytes())
    cd = _central_records(bytes(data))["ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG"]
    struct.pack_into("<I", data, cd + 24, 1000)
    path.write_bytes(bytes(data))
    (_, offset, csize), = [m for m in kagglezip.zip_members(str(path))]
    archive = containers.ZipMembers(str(path))
    handle = archive.open()
    try:
        with pytest.raises(UserError, match="inflates to more than the 1000 bytes"):
            archive.read(handle, offset, csize)
    finally:
        archive.close(handle)


@pytest.mark.parametrize("member,words", [
    ("train/README/x.JPEG", ["train/README/", "is not a class"]),
    ("train/n01440764/sub/x.JPEG", ["train/n01440764/sub/x.JPEG", "left out"]),
    ("val/sub/ILSVRC2012_val_00000099.JPEG", ["val/sub/", "left out"]),
    ("train/n01440764/x.jpg", ["x.jpg", "left out"]),
])
def test_zip_member_outside_the_layout_is_refused(sample_release, tmp_path, member, words):
    src, _ = sample_release
    files = release_files(src)
    files.append(("%s/%s" % (CLS, member), files[0][1]))
    d, _ = kaggle_dir(sample_release, tmp_path, files=files)
    out = str(tmp_path / "out")
    one_line_error(build(d, out), "build.sh", ZIP, *words)
    assert not shard_files(out)


def test_kaggle_test_images_are_not_refused(sample_release, tmp_path, tf):
    """ILSVRC/Data/CLS-LOC/test/ is part of the Kaggle copy and simply not converted."""
    src, manifest = sample_release
    files = release_files(src)
    files.append((CLS + "/test/ILSVRC2012_test_00000001.JPEG", files[0][1]))
    d, _ = kaggle_dir(sample_release, tmp_path, files=files)
    out = str(tmp_path / "out")
    r = build(d, out, "--no-verify")
    assert r.returncode == 0, r.stderr
    got = read_records(shard_files(out), tf)
    assert len(got) == len(files) - 1
    assert not [n for n, _, _ in got if "test" in n]


def test_unpacked_kaggle_tree_with_a_non_synset_class_is_refused(sample_release, tmp_path):
    src, _ = sample_release
    root = tmp_path / "kaggle"
    for name, payload in release_files(src):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(payload)
    (root / CLS / "train" / "n01440764 (copy)").mkdir()
    out = str(tmp_path / "out")
    one_line_error(build(str(root), out), "build.sh", "n01440764 (copy)", "not a class")
    assert not shard_files(out)


def test_prepare_out_inside_its_source_is_refused(sample_release, tmp_path):
    """It used to copy its own output into itself without end."""
    src, _ = sample_release
    root = tmp_path / "src"
    for name, payload in release_files(src)[:3]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(payload)
    out = root / "ILSVRC" / "prepared"
    r = subprocess.run([sys.executable, os.path.join(REPO, "metalhead", "prepare.py"),
                        str(root), "--out", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("prepare: error: ") and "inside the source folder" in last
    assert str(out) in last
    assert not out.exists()
