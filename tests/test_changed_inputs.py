"""A changed input is never kept silently: an edit that keeps the size and puts the
mtime back (`touch -r`) makes the source index stale, a rerun checks the shards it
keeps against the source as it is now (record by record, image bytes included), and
`./verify.sh --source` compares every record with what the source gives."""

import io
import os
import tarfile

import pytest

from conftest import run_cmd
from ilsvrc import pool
from ilsvrc.errors import UserError
from ilsvrc.formats import official
from ilsvrc.records import features, tfrecord

VAL_TAR = "ILSVRC2012_img_val.tar"


def _convert(raw, out, **kw):
    log = io.StringIO()
    with pool.Pool(0) as runner:
        official.convert(raw, out, runner, log=log, **kw)
    return log.getvalue()


def _flip_in_member(tar_path, member, at=200):
    """Change one byte inside `member` of a flat tar in place: same size, and the
    mtime put back as `touch -r` would."""
    st = os.stat(tar_path)
    with tarfile.open(tar_path) as t:
        info = t.getmember(member)
    with open(tar_path, "r+b") as f:
        f.seek(info.offset_data + at)
        b = f.read(1)
        f.seek(info.offset_data + at)
        f.write(bytes([b[0] ^ 0x01]))
    os.utime(tar_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.path.getsize(tar_path) == st.st_size


def _shard_holding(out, name):
    for sub in ("validation", "train"):
        for shard in sorted(os.listdir(os.path.join(out, sub))):
            if shard.startswith("."):
                continue
            path = os.path.join(out, sub, shard)
            for payload in tfrecord.read_records(path):
                if features.decode(payload)["image/filename"][1][0] == name.encode():
                    return path
    raise AssertionError("no shard holds %s" % name)


def test_touch_r_edit_makes_the_index_stale(release_copy, tmp_path):
    raw, _ = release_copy
    out = str(tmp_path / "out")
    r = run_cmd(["./build.sh", raw, "-o", out, "--index-only"])
    assert r.returncode == 0, r.stderr
    _flip_in_member(os.path.join(raw, VAL_TAR), "ILSVRC2012_val_00000002.JPEG")
    r = run_cmd(["./build.sh", raw, "-o", out])
    assert r.returncode != 0
    assert "ilsvrc-source.index is stale" in r.stderr and VAL_TAR in r.stderr
    assert "Traceback" not in r.stderr


def test_rerun_after_a_changed_input_checks_the_kept_shards(release_copy, tmp_path):
    raw, _ = release_copy
    out = str(tmp_path / "out")
    _convert(raw, out)
    _flip_in_member(os.path.join(raw, VAL_TAR), "ILSVRC2012_val_00000002.JPEG")
    with pytest.raises(UserError) as err:
        _convert(raw, out)
    text = str(err.value)
    assert "ILSVRC2012_val_00000002.JPEG" in text and "image bytes differ" in text
    assert "Delete the shard and rerun" in text
    # the fix it names works: that shard is written again from the source as it is
    os.remove(_shard_holding(out, "ILSVRC2012_val_00000002.JPEG"))
    _convert(raw, out)
    fresh = str(tmp_path / "fresh")
    _convert(raw, fresh)
    for sub in ("train", "validation"):
        for name in os.listdir(os.path.join(fresh, sub)):
            if not name.startswith("."):
                with open(os.path.join(out, sub, name), "rb") as a, \
                        open(os.path.join(fresh, sub, name), "rb") as b:
                    assert a.read() == b.read(), name


def test_a_touched_input_with_the_same_bytes_is_checked_once(release_copy, tmp_path,
                                                             capfd):
    raw, _ = release_copy
    out = str(tmp_path / "out")
    _convert(raw, out)
    path = os.path.join(raw, VAL_TAR)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    capfd.readouterr()
    _convert(raw, out)                        # checked, same bytes: kept
    first = capfd.readouterr().err
    assert "changed (size, mtime or ctime) since the finished validation shards" in first
    assert VAL_TAR in first
    _convert(raw, out)                        # now recorded: not checked again
    assert "record by record" not in capfd.readouterr().err


def _rewrite_record(shard, name, at=100):
    """Flip a byte of `name`'s image bytes inside `shard`, framing and CRCs redone:
    a shard that reads back clean but holds another image."""
    records = list(tfrecord.read_records(shard))
    out = []
    for payload in records:
        feats = features.decode(payload)
        if feats["image/filename"][1][0] == name.encode():
            data = bytearray(feats["image/encoded"][1][0])
            data[at] ^= 0x01
            feats["image/encoded"] = (features.BYTES, [bytes(data)])
            payload = features.encode(feats)
        out.append(tfrecord.frame(payload))
    with open(shard, "wb") as f:
        f.write(b"".join(out))


def test_verify_source_compares_every_image_byte(release_copy, tmp_path):
    raw, _ = release_copy
    out = str(tmp_path / "out")
    _convert(raw, out)
    _rewrite_record(_shard_holding(out, "ILSVRC2012_val_00000004.JPEG"),
                    "ILSVRC2012_val_00000004.JPEG")
    r = run_cmd(["./verify.sh", "official", out, "--source", raw])
    assert r.returncode != 0
    assert "image bytes differ from" in r.stdout + r.stderr
    assert "ILSVRC2012_val_00000004.JPEG" in r.stdout + r.stderr
    quick = run_cmd(["./verify.sh", "official", out, "--source", raw, "--no-image-bytes"])
    assert quick.returncode == 0, quick.stderr
    assert quick.stdout.strip().splitlines()[-1].endswith(
        "(image bytes not compared with the source: --no-image-bytes)")
