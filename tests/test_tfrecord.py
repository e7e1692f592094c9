"""Record framing: CRC32C against the spec's vectors, TF writer == pure-Python writer,
and shards of a conversion read back by tf.data with every CRC checked."""

import glob
import os
import random
import struct
import subprocess
import sys

from conftest import REPO
from ilsvrc import crc32c, pool
from ilsvrc.formats import official
from ilsvrc.records import tfrecord


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
    assert crc32c.value(b"123456789") == 0xE3069283
    assert _crc32c_bitwise(b"123456789") == 0xE3069283
    assert tfrecord.masked_crc(b"123456789") == 0xC78AB0E5
    assert tfrecord.frame(b"").hex() == "0000000000000000" "29039807" "d8ea82a2"
    assert tfrecord.frame(b"abc").hex() == "0300000000000000" "b099490e" "616263" "6e57f121"


def test_table_crc_matches_bitwise_reference():
    rng = random.Random(5)
    for n in (0, 1, 2, 3, 7, 8, 63, 64, 255, 256, 1000, 4099):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc32c.value(data) == _crc32c_bitwise(data)
        assert tfrecord.frame(data) == _frame_reference(data)


def test_tensorflow_writer_equals_python_writer(tf, tmp_path, monkeypatch):
    rng = random.Random(9)
    payloads = [b"", b"abc"] + [os.urandom(rng.choice((1, 100, 5000, 70000)))
                                for _ in range(12)]
    paths = {k: str(tmp_path / (k + ".rec")) for k in ("tf", "compiled", "table")}
    w = tf.io.TFRecordWriter(paths["tf"])
    for p in payloads:
        w.write(p)
    w.close()
    assert crc32c.compiled() is not None      # found in this TensorFlow install
    w = tfrecord.open_writer(paths["compiled"])
    assert isinstance(w, tfrecord.PyRecordWriter)
    for p in payloads:
        w.write(p)
    w.close()
    monkeypatch.setattr(crc32c, "_crc", None)   # as where the library is not found
    w = tfrecord.open_writer(paths["table"], use_tf=False)
    assert isinstance(w, tfrecord.PyRecordWriter)
    for p in payloads:
        w.write(p)
    w.close()
    data = {}
    for k, path in paths.items():
        with open(path, "rb") as f:
            data[k] = f.read()
    assert data["tf"] == data["compiled"] == data["table"]
    assert data["tf"] == b"".join(_frame_reference(p) for p in payloads)
    assert list(tfrecord.read_records(paths["tf"])) == payloads


def test_compiled_crc32c_matches_bitwise_reference():
    fast = crc32c.compiled()
    assert fast is not None
    rng = random.Random(6)
    for n in (0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099, 70001):
        data = bytes(rng.randrange(256) for _ in range(n))
        want = _crc32c_bitwise(data)
        assert fast(data) == want
        assert fast(bytearray(data)) == want
        assert fast(memoryview(b"xy" + data)[2:]) == want


def test_written_with_compiled_crc_without_importing_tensorflow(tmp_path):
    code = ("import sys; from ilsvrc import crc32c\nfrom ilsvrc.records import tfrecord\n"
            "assert crc32c.compiled() is not None\n"
            "w = tfrecord.open_writer(sys.argv[1]); w.write(b'abc'); w.close()\n"
            "assert list(tfrecord.read_records(sys.argv[1])) == [b'abc']\n"
            "print('TF' if any(m.startswith('tensorflow') for m in sys.modules) "
            "else 'NO-TF')\n")
    path = str(tmp_path / "x.rec")
    r = subprocess.run([sys.executable, "-c", code, path], cwd=REPO, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["NO-TF"]
    with open(path, "rb") as f:
        assert f.read() == tfrecord.frame(b"abc") == _frame_reference(b"abc")


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
