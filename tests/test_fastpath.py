"""The write path's fast code against the references: fastcodec's encoder gives the
bytes of features.encode (and of protobuf), its plan-directed reader accepts exactly
those bytes, the batched writer frames as TFRecordWriter does, and the in-worker
check's fast path still catches every fault: each test below fails if the check is
removed."""

import io
import os
import random
import struct

import pytest

from ilsvrc import crc32c, pool
from ilsvrc.errors import UserError
from ilsvrc.formats import official
from ilsvrc.records import checks, fastcodec, features, tfrecord
from ilsvrc.write import shardcheck
from test_shardcheck import _rewrite, _set_feature

B, F, I = features.BYTES, features.FLOAT, features.INT64


def _random_features(rng, image=None):
    feats = {
        "image/encoded": (B, [image if image is not None else
                              bytes(rng.randrange(256) for _ in range(rng.choice(
                                  (0, 5, 127, 128, 1023, 1024, 5000, 70000))))]),
        "image/height": (I, [rng.randrange(1, 1 << 16)]),
        "image/class/label": (I, [rng.randrange(1, 1001)]),
        "image/class/synset": (B, [b"n%08d" % rng.randrange(10 ** 8)]),
        "image/filename": (B, [("n%08d_%d.JPEG" % (rng.randrange(10 ** 8),
                                                   rng.randrange(10 ** 6))).encode()]),
        "image/object/bbox/xmin": (F, [rng.random() for _ in range(rng.randrange(4))]),
        "image/object/bbox/label": (I, [rng.randrange(-3, 1001)
                                        for _ in range(rng.randrange(5))]),
        "image/extreme": (I, [rng.choice((0, 127, 128, 1 << 62, -(1 << 63), -1))]),
        "image/many": (B, [bytes(rng.randrange(256) for _ in range(rng.randrange(2000)))
                           for _ in range(rng.randrange(4))]),
        "image/empty": (rng.choice((B, F, I)), []),
        "ключ/ü": (B, [b"unicode key"]),
    }
    return feats


def test_encode_parts_gives_the_reference_bytes():
    rng = random.Random(5)
    for _ in range(300):
        feats = _random_features(rng)
        parts = fastcodec.encode_parts(feats)
        assert b"".join(parts) == features.encode(feats)
        # large values are pieces of their own: the very objects, not copies
        big = [v for _, vs in feats.values() for v in vs
               if isinstance(v, bytes) and len(v) >= fastcodec.BIG]
        assert [p for p in parts if any(p is v for v in big)] == big


def test_encode_parts_equals_protobuf(tf):
    rng = random.Random(6)
    for _ in range(20):
        feats = _random_features(rng)
        ex = tf.train.Example(features=tf.train.Features(feature={
            k: tf.train.Feature(**{
                {B: "bytes_list", F: "float_list", I: "int64_list"}[kind]:
                {B: tf.train.BytesList, F: tf.train.FloatList,
                 I: tf.train.Int64List}[kind](value=v)})
            for k, (kind, v) in feats.items()}))
        assert b"".join(fastcodec.encode_parts(feats)) == \
            ex.SerializeToString(deterministic=True)


def test_matches_exactly_the_canonical_bytes():
    rng = random.Random(7)
    feats = _random_features(rng, image=bytes(range(256)) * 5)
    feats["image/many"] = (B, [b"x" * 3, b""])
    good = features.encode(feats)
    assert fastcodec.matches(good, feats)
    assert fastcodec.matches(bytearray(b"ab" + good + b"cd"), feats, 2, 2 + len(good))
    for i in range(len(good)):                    # any byte changed
        bad = bytearray(good)
        bad[i] ^= 1 << (i % 8)
        assert not fastcodec.matches(bytes(bad), feats), i
        assert fastcodec.matches(good, feats)     # what was verified stays right
    for n in range(len(good)):                    # any truncation
        assert not fastcodec.matches(good[:n], feats), n
    assert not fastcodec.matches(good + b"\x00", feats)


def _ld(field, payload):
    return features._len_field(field, payload)


def _example(*entries):
    return _ld(1, b"".join(_ld(1, _ld(1, key) + _ld(2, feature))
                           for key, feature in entries))


def test_matches_refuses_other_features_and_non_canonical_forms():
    feats = {"a": (I, [5]), "b": (B, [b"xyz"]), "c": (F, [0.5])}
    good = features.encode(feats)
    a, b, c = (b"a", _ld(3, _ld(1, b"\x05"))), (b"b", _ld(1, _ld(1, b"xyz"))), \
        (b"c", _ld(2, _ld(1, struct.pack("<f", 0.5))))
    assert _example(a, b, c) == good and fastcodec.matches(good, feats)
    for other in ({"a": (I, [6]), "b": (B, [b"xyz"]), "c": (F, [0.5])},
                  {"a": (I, [5]), "b": (B, [b"xyz"]), "c": (F, [-0.5])},
                  {"a": (I, [5]), "b": (B, [b"xyz"])},
                  {"a": (I, [5]), "b": (B, [b"xyz"]), "c": (F, [0.5]), "d": (I, [])},
                  {"a": (B, [b"\x05"]), "b": (B, [b"xyz"]), "c": (F, [0.5])},
                  {"a": (I, [5, 5]), "b": (B, [b"xyz"]), "c": (F, [0.5])}):
        assert not fastcodec.matches(good, other)
        assert not fastcodec.matches(features.encode(other), feats)
    # the same features, validly but not canonically encoded: an unpacked int64, a
    # varint longer than it needs to be, entries out of key order, a key twice
    for other_bytes in (_example((b"a", _ld(3, b"\x08\x05")), b, c),
                        _example(a, (b"b", _ld(1, b"\x0a\x83\x00xyz")), c),
                        _example(c, b, a),
                        _example(a, (b"b", _ld(1, _ld(1, b"old"))), b, c)):
        assert other_bytes != good and features.decode(other_bytes) == feats
        assert not fastcodec.matches(other_bytes, feats)


def test_writer_batches_and_frames_like_the_reference(tmp_path, monkeypatch):
    rng = random.Random(8)
    records = [fastcodec.encode_parts(_random_features(rng)) for _ in range(120)]
    monkeypatch.setattr(tfrecord.PyRecordWriter, "BATCH", 300000)
    calls = []
    real = os.writev

    def short_writev(fd, iov):                  # every third call writes half
        calls.append(len(iov))
        if len(calls) % 3:
            return real(fd, iov)
        data = b"".join(iov)
        return os.write(fd, data[:len(data) // 2])
    monkeypatch.setattr(tfrecord.os, "writev", short_writev)
    path = str(tmp_path / "a.rec")
    w = tfrecord.PyRecordWriter(path, sync=False)
    for parts in records:
        w.write_parts(parts)
    w.close()
    assert 1 < len(calls) < len(records) and max(calls) <= tfrecord.PyRecordWriter.IOVECS
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"".join(tfrecord.frame(b"".join(p)) for p in records)


def test_pieces_are_framed_with_the_crc_of_their_concatenation():
    rng = random.Random(10)
    for _ in range(50):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(3000)))
        cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(5)))
        pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        header, footer = tfrecord.frame_pieces(pieces)
        assert header == struct.pack("<Q", len(data)) + struct.pack(
            "<I", crc32c.mask(crc32c.table(struct.pack("<Q", len(data)))))
        assert footer == struct.pack("<I", crc32c.mask(crc32c.table(data)))


def test_a_queued_piece_changed_later_is_written_as_it_was(tmp_path):
    path = str(tmp_path / "b.rec")
    piece = bytearray(b"abc" * 500)
    w = tfrecord.PyRecordWriter(path, sync=False)
    w.write_parts([b"head", piece])
    piece[:3] = b"XYZ"                 # still queued: not written yet
    w.close()
    assert list(tfrecord.read_records(path)) == [b"head" + b"abc" * 500]


# ------------------------------------------------------------------ the check

SCHEMA = {"image/encoded": B, "image/height": I, "image/class/label": I,
          "image/class/synset": B, "image/filename": B}


def _shard(tmp_path, count=6, seed=9):
    rng = random.Random(seed)
    plans = []
    for k in range(count):
        plans.append({
            "image/encoded": (B, [bytes(rng.randrange(256) for _ in range(3000 + k))]),
            "image/height": (I, [375]),
            "image/class/label": (I, [1 + k % 3]),
            "image/class/synset": (B, [b"n0000000%d" % (k % 3)]),
            "image/filename": (B, [b"img_%d.JPEG" % k])})
    path = str(tmp_path / ".shard.partial")
    return path, plans


def _write_and_check(path, plans, corrupt=None):
    """Write `plans` as the worker does, corrupt the file (after it is closed), check."""
    w = tfrecord.PyRecordWriter(path, sync=False)
    check = shardcheck.ShardCheck(path, "out/shard", SCHEMA, (1, 1000))
    for feats in plans:
        parts = fastcodec.encode_parts(feats)
        w.write_parts(parts)
        check.add(feats, w.flush)
    w.close()
    if corrupt is not None:
        corrupt(path)
    return check.finish(), check


def _edit(path, fn):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data = fn(data)
    with open(path, "wb") as f:
        f.write(data)


def _flip(at):
    def fn(data):
        data[at(len(data))] ^= 0x04
        return data
    return lambda p: _edit(p, fn)


FAULTS = {
    "flipped image byte": (_flip(lambda n: n // 2), "corrupt when read back"),
    "flipped header byte": (_flip(lambda n: 3), "corrupt when read back"),
    "flipped footer byte": (_flip(lambda n: n - 1), "corrupt when read back"),
    "truncated record": (lambda p: os.truncate(p, os.path.getsize(p) - 5),
                         "corrupt when read back"),
    "wrong label": (lambda p: _rewrite(p, lambda r: r[:2] + [
        _set_feature(r[2], "image/class/label", 1)] + r[3:]), "record 2 (read back after "
        "writing): image/class/label is (1,), planned (3,)"),
    "wrong file name": (lambda p: _rewrite(p, lambda r: [
        _set_feature(r[0], "image/filename", b"other.JPEG")] + r[1:]), "image/filename is"),
    "other image bytes": (lambda p: _rewrite(p, lambda r: r[:-1] + [
        _set_feature(r[-1], "image/encoded", b"\xff\xd8" + bytes(3003))]),
        "image/encoded differs from the planned image bytes"),
    "record missing": (lambda p: _rewrite(p, lambda r: r[:-1]),
                       "5 records read back after writing, planned 6"),
    "record added": (lambda p: _rewrite(p, lambda r: r + r[:1]),
                     "more records than the 6 planned"),
    "trailing bytes": (lambda p: _edit(p, lambda d: d + b"\x00" * 3),
                       "corrupt when read back"),
    "not an Example": (lambda p: _rewrite(p, lambda r: [b"\xff" * 9] + r[1:]),
                       "not an Example"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_the_fast_check_catches(tmp_path, fault):
    path, plans = _shard(tmp_path)
    corrupt, words = FAULTS[fault]
    with pytest.raises(UserError) as err:
        _write_and_check(path, plans, corrupt)
    assert words in str(err.value) and "out/shard" in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_each_budget_check_reads_back_what_it_checks(tmp_path, monkeypatch):
    """With a check every record (BUDGET 1), a byte changed in the file after the
    writer's flush and before that record's check is caught by that check."""
    monkeypatch.setattr(shardcheck, "BUDGET", 1)
    path, plans = _shard(tmp_path)
    w = tfrecord.PyRecordWriter(path, sync=False)
    check = shardcheck.ShardCheck(path, "out/shard", SCHEMA, (1, 1000))

    def flush_then_flip():
        w.flush()
        if check.checked == 3:
            _flip(lambda n: n - 100)(path)
    with pytest.raises(UserError, match="out/shard: corrupt .*after 3 good records"):
        for feats in plans:
            parts = fastcodec.encode_parts(feats)
            w.write_parts(parts)
            check.add(feats, flush_then_flip)
    w.close()


def test_the_fast_check_passes_a_good_shard_without_the_reference(tmp_path, monkeypatch):
    path, plans = _shard(tmp_path)
    slow = []
    monkeypatch.setattr(shardcheck.ShardCheck, "_records_checked",
                        lambda self, *a, **k: slow.append(a))
    n, check = _write_and_check(path, plans)
    assert n == 6 and slow == []
    assert check.pairs == {"n00000000": {1}, "n00000001": {2}, "n00000002": {3}}


def test_a_label_out_of_range_is_caught_though_the_bytes_are_as_written(tmp_path):
    path, plans = _shard(tmp_path)
    plans[4]["image/class/label"] = (I, [1001])
    with pytest.raises(UserError, match=r"record 4 .*image/class/label \[1001\] "
                                        r"outside 1\.\.1000"):
        _write_and_check(path, plans)


def test_bytes_written_other_than_the_plan_are_caught(tmp_path, monkeypatch):
    """A fault between encoding and the file: the writer's pieces say one thing, the
    plan another (the image the worker prepared is not what was framed)."""
    path, plans = _shard(tmp_path)
    real = fastcodec.encode_parts

    def wrong(feats):
        parts = real(feats)
        if feats["image/filename"][1][0] == b"img_3.JPEG":
            parts = [bytes(parts[0]), bytes(len(parts[1])), *parts[2:]]
        return parts
    monkeypatch.setattr(fastcodec, "encode_parts", wrong)
    with pytest.raises(UserError, match="record 3 .*image/encoded differs"):
        _write_and_check(path, plans)


def test_a_conversion_takes_the_fast_path_and_writes_canonical_records(
        sample_release, tmp_path, monkeypatch):
    monkeypatch.setattr(official, "TRAIN_SHARDS", 6)
    monkeypatch.setattr(official, "VAL_SHARDS", 2)
    slow = []
    real = shardcheck.ShardCheck._records_checked
    monkeypatch.setattr(shardcheck.ShardCheck, "_records_checked",
                        lambda self, *a, **k: slow.append(a) or real(self, *a, **k))
    out = str(tmp_path / "out")
    with pool.Pool(0) as runner:
        _, stats = official.convert(sample_release[0], out, runner, log=io.StringIO())
    assert slow == [] and sum(stats["checked"].values()) > 0
    for split in ("train", "validation"):
        for name in os.listdir(os.path.join(out, split)):
            if name.startswith("."):
                continue
            for payload in checks.local_records(os.path.join(out, split, name)):
                assert features.encode(features.decode(payload)) == payload


# ------------------------------------------------------------ TensorFlow's C API

def test_c_api_ops_give_tf_io_bytes_and_sizes(tf):
    from ilsvrc.records import image, tfops
    from ilsvrc.testing import sample
    ops = tfops.ops()
    assert ops is not None                        # found in this TensorFlow install
    rng = random.Random(12)
    for kind in ("rgb", "gray", "cmyk", "png"):
        data = sample.make_image(rng, kind, 41, 29)
        decode = tf.io.decode_png if kind == "png" else tf.io.decode_jpeg
        for channels in (0, 3) if kind != "png" else (3,):
            got = (ops.decode_png if kind == "png" else ops.decode_jpeg)(
                data, channels=channels)
            want = decode(data, channels=channels)
            assert got.shape == tuple(want.shape), (kind, channels)
            fmt = "rgb" if want.shape[-1] == 3 else ""
            for quality in (100, 90):
                assert ops.encode_jpeg(got, format=fmt, quality=quality).numpy() == \
                    tf.io.encode_jpeg(want, format=fmt, quality=quality).numpy()
    with pytest.raises(ValueError) as err:
        ops.decode_jpeg(b"\xff\xd8" + bytes(300), channels=3)
    with pytest.raises(tf.errors.InvalidArgumentError) as tf_err:
        tf.io.decode_jpeg(b"\xff\xd8" + bytes(300), channels=3)
    assert str(err.value) in str(tf_err.value)
    assert image.image_ops() is ops


def test_without_the_c_api_the_python_ops_give_the_same_bytes(tf, monkeypatch):
    from ilsvrc.records import image, tfops
    from ilsvrc.testing import sample
    rng = random.Random(13)
    data = {kind: sample.make_image(rng, kind, 30, 20) for kind in ("cmyk", "png")}
    fast = {kind: image.reencode(d, kind) for kind, d in data.items()}
    monkeypatch.setattr(tfops, "_ops", None)
    monkeypatch.setattr(tfops, "_loaded", True)
    monkeypatch.setattr(image, "_python_ops", None)
    assert image.image_ops() is not tfops.ops()
    assert {kind: image.reencode(d, kind) for kind, d in data.items()} == fast
    assert image.decoded_size(data["cmyk"]) == (20, 30)


def test_c_api_ops_do_not_keep_their_inputs():
    """Each op's input is a view of the caller's bytes: nothing is left behind per
    call (a copy inside a tensor allocated through the C API is never freed)."""
    from ilsvrc.records import tfops
    from ilsvrc.testing import sample
    ops = tfops.ops()
    data = sample.make_image(random.Random(14), "rgb", 40, 30)
    big = data + bytes(200000)              # libjpeg ignores what follows the image

    def rss():
        with open("/proc/self/status") as f:
            return int(f.read().split("VmRSS:")[1].split()[0]) * 1024
    for _ in range(20):
        ops.decode_jpeg(big, channels=3)
    before = rss()
    for _ in range(400):                   # would leak 400 x 200 KB = 80 MB
        assert ops.decode_jpeg(big, channels=3).shape == (30, 40, 3)
    assert rss() - before < 30 << 20
