"""Record framing: CRC32C against the spec's vectors, TF writer == pure-Python writer,
and shards of a conversion read back by tf.data with every CRC checked."""

import glob
import os
import random
import struct

from ilsvrc import official, pool, tfrecord


def _crc32c_bitwise(data):
    """Independent CRC-32C: bit by bit, no table (Castagnoli, reflected)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _mask(c):
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _frame_reference(payload):
    length = struct.pack("<Q", len(payload))
    return (length + struct.pack("<I", _mask(_crc32c_bitwise(length))) + payload
            + struct.pack("<I", _mask(_crc32c_bitwise(payload))))


def test_spec_vectors():
    assert tfrecord.crc32c(b"123456789") == 0xE3069283
    assert _crc32c_bitwise(b"123456789") == 0xE3069283
    assert tfrecord.masked_crc(b"123456789") == 0xC78AB0E5
    assert tfrecord.frame(b"").hex() == "0000000000000000" "29039807" "d8ea82a2"
    assert tfrecord.frame(b"abc").hex() == "0300000000000000" "b099490e" "616263" "6e57f121"


def test_table_crc_matches_bitwise_reference():
    rng = random.Random(5)
    for n in (0, 1, 2, 3, 7, 8, 63, 64, 255, 256, 1000, 4099):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert tfrecord.crc32c(data) == _crc32c_bitwise(data)
        assert tfrecord.frame(data) == _frame_reference(data)


def test_tensorflow_writer_equals_python_writer(tf, tmp_path):
    rng = random.Random(9)
    payloads = [b"", b"abc"] + [os.urandom(rng.choice((1, 100, 5000, 70000)))
                                for _ in range(12)]
    a, b = str(tmp_path / "tf.rec"), str(tmp_path / "py.rec")
    w = tfrecord.open_writer(a)
    assert not isinstance(w, tfrecord.PyRecordWriter)
    for p in payloads:
        w.write(p)
    w.close()
    w = tfrecord.open_writer(b, use_tf=False)
    assert isinstance(w, tfrecord.PyRecordWriter)
    for p in payloads:
        w.write(p)
    w.close()
    with open(a, "rb") as fa, open(b, "rb") as fb:
        data = fa.read()
        assert data == fb.read()
    assert data == b"".join(_frame_reference(p) for p in payloads)
    assert list(tfrecord.read_records(a)) == payloads


def test_written_shards_have_good_crcs_and_tf_data_reads_them(tf, sample_release,
                                                              tmp_path):
    raw, manifest = sample_release
    out = str(tmp_path / "out")
    with pool.Pool(0) as runner:
        official.convert(raw, out, runner, do_verify=False)
    shards = sorted(glob.glob(os.path.join(out, "*", "*-of-*")))
    assert len(shards) == official.TRAIN_SHARDS + official.VAL_SHARDS
    ours = []
    for path in shards:
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):        # walk the framing with the bitwise reference
            (n,) = struct.unpack_from("<Q", data, pos)
            assert struct.unpack_from("<I", data, pos + 8)[0] == \
                _mask(_crc32c_bitwise(data[pos:pos + 8]))
            payload = data[pos + 12:pos + 12 + n]
            assert struct.unpack_from("<I", data, pos + 12 + n)[0] == \
                _mask(_crc32c_bitwise(payload))
            ours.append(payload)
            pos += 16 + n
        assert pos == len(data)
    theirs = [r.numpy() for r in tf.data.TFRecordDataset(shards)]
    assert theirs == ours
    images = sum(len(v) for v in manifest["train"].values()) + len(manifest["val"])
    assert len(ours) == images
