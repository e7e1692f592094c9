"""The in-worker check: every shard is read back by the worker that wrote it and
checked against the plan before it is kept; a corrupted write is caught there, not
later.  Faults are injected between the worker's close and its check."""

import glob
import io
import os

import pytest

from conftest import run_cmd
from ilsvrc import crc32c, pool
from ilsvrc.records import features, image, tfrecord
from ilsvrc.formats import official
from ilsvrc.write import shardcheck, worker
from ilsvrc.verify import reread
from ilsvrc.testing import sample
from ilsvrc.errors import UserError


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("check-release"))
    sample.generate(d, classes=4, per_class=12, val=12, seed=3)
    return d


@pytest.fixture(autouse=True)
def few_shards(monkeypatch):
    """10 + 5 shards: training shards of 5 images (the last of 3), validation of 3
    (the last empty), so a shard holds several records."""
    monkeypatch.setattr(official, "TRAIN_SHARDS", 10)
    monkeypatch.setattr(official, "VAL_SHARDS", 5)


def _convert(raw, out, workers=0, **kw):
    log = io.StringIO()
    with pool.Pool(workers) as runner:
        _, stats = official.convert(raw, out, runner, log=log, **kw)
    return stats, log.getvalue()


def _count_reverifies(monkeypatch):
    calls = []
    real = reread.verify_shard

    def counting(job):
        calls.append(job.path)
        return real(job)
    monkeypatch.setattr(reread, "verify_shard", counting)
    return calls


def test_fresh_run_checks_in_the_worker_and_rereads_nothing(release, tmp_path,
                                                            monkeypatch):
    rereads = _count_reverifies(monkeypatch)
    stats, log = _convert(release, str(tmp_path / "out"))
    assert stats["checked"] == {"train": 48, "validation": 12}
    assert rereads == []                       # no second pass over the shards
    line = [l for l in log.splitlines() if l.startswith("verified:")]
    assert line == ["verified: 48 train and 12 validation records, every image once "
                    "with its label (each shard read back by the worker that wrote it, "
                    "before it was kept: framing, CRC32C, Example, every feature and "
                    "the image bytes against the plan; labels against the ILSVRC2012 "
                    "contract; ./verify.sh re-reads them all from disk)"]


def test_no_verify_checks_nothing(release, tmp_path):
    stats, log = _convert(release, str(tmp_path / "out"), do_verify=False)
    assert stats["checked"] is None and "verified" not in log


def test_kept_shards_are_reread_from_disk(release, tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    _convert(release, out, do_verify=False)
    os.remove(os.path.join(out, "train", "train-00003-of-00010"))
    rereads = _count_reverifies(monkeypatch)
    stats, log = _convert(release, out)
    assert stats["shards"] == 1 and stats["checked"] == {"train": 5, "validation": 0}
    assert len(rereads) == 14
    assert "14 shards kept from an earlier run re-read from disk" in log
    assert "verified: 48 train and 12 validation records" in log
    # a kept shard that went bad since is caught by that re-read
    victim = os.path.join(out, "validation", "validation-00002-of-00005")
    with open(victim, "r+b") as f:
        f.seek(40)
        b = f.read(1)
        f.seek(40)
        f.write(bytes([b[0] ^ 0x10]))
    with pytest.raises(UserError, match="validation-00002-of-00005: corrupt"):
        _convert(release, out)


def _rewrite(path, change):
    """Rewrite the records of `path` through change(list of payloads): validly
    framed, so only the comparison with the plan can tell."""
    payloads = change(list(tfrecord.read_records(path)))
    w = tfrecord.PyRecordWriter(path, sync=False)
    for p in payloads:
        w.write(p)
    w.close()


def _set_feature(payload, key, value):
    feats = features.decode(payload)
    feats[key] = (feats[key][0], [value])
    return features.encode(feats)


def _flip_byte(path):
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x01]))


def _other_image(recs):
    feats = features.decode(recs[0])
    data = bytearray(feats["image/encoded"][1][0])
    data[len(data) // 2] ^= 0xFF         # same length, other bytes
    return [_set_feature(recs[0], "image/encoded", bytes(data))] + recs[1:]


FAULTS = {
    "flipped byte": (_flip_byte, "corrupt when read back after writing"),
    "truncated": (lambda p: os.truncate(p, os.path.getsize(p) - 7),
                  "corrupt when read back after writing"),
    "other image bytes": (lambda p: _rewrite(p, _other_image),
                          "image/encoded differs from the planned image bytes"),
    "wrong label": (lambda p: _rewrite(p, lambda r: [_set_feature(
        r[0], "image/class/label", features.decode(r[0])["image/class/label"][1][0] % 4 + 1)]
        + r[1:]), "image/class/label is"),
    "wrong synset": (lambda p: _rewrite(p, lambda r: [_set_feature(
        r[0], "image/class/synset", b"n99999999")] + r[1:]), "image/class/synset is"),
    "swapped records": (lambda p: _rewrite(p, lambda r: r[::-1]), "image/filename is"),
    "record missing": (lambda p: _rewrite(p, lambda r: r[:-1]),
                       "records read back after writing, planned"),
    "record added": (lambda p: _rewrite(p, lambda r: r + r[:1]),
                     "more records than the"),
    "not an Example": (lambda p: _rewrite(p, lambda r: [b"\xff" * 9] + r[1:]),
                       "not an Example"),
}


def _fallback(monkeypatch):
    """As where the compiled CRC32C is not found: TF's writer and reader instead."""
    monkeypatch.setattr(crc32c, "_loaded", True)
    monkeypatch.setattr(crc32c, "_crc", None)


VICTIM = "train-00002-of-00010"


def _assert_caught(err, out, words):
    msg = str(err.value)
    assert VICTIM in msg and words in msg, msg
    assert "\n" not in msg and "rerun the same command" in msg.lower()
    # neither kept under its final name nor left as a partial file
    assert not os.path.exists(os.path.join(out, "train", VICTIM))
    assert not glob.glob(os.path.join(out, "train", "." + VICTIM + "*"))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-crc", "tf-reader"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_corrupted_file_is_caught_by_the_worker(release, tmp_path, monkeypatch, fault,
                                                compiled):
    """The partial file is changed after the writer closed it, before the check."""
    if not compiled:
        _fallback(monkeypatch)
    corrupt, words = FAULTS[fault]
    real_finish = shardcheck.ShardCheck.finish
    hit = []

    def injected(self):
        if os.path.basename(self.path) == VICTIM:
            corrupt(self.tmp)
            hit.append(self.path)
        return real_finish(self)

    monkeypatch.setattr(shardcheck.ShardCheck, "finish", injected)
    out = str(tmp_path / "out")
    with pytest.raises(UserError) as err:
        _convert(release, out)
    assert len(hit) == 1
    _assert_caught(err, out, words)


class _BadWriter:
    """A record writer that writes record 2 of the victim shard with one image byte
    changed, correctly framed: a fault in the write path itself."""

    def __init__(self, inner, victim):
        self.inner, self.victim, self.n = inner, victim, 0

    def write(self, payload):
        if self.victim and self.n == 2:
            feats = features.decode(payload)
            data = bytearray(feats["image/encoded"][1][0])
            data[-3] ^= 0x40
            payload = _set_feature(payload, "image/encoded", bytes(data))
        self.n += 1
        self.inner.write(payload)

    def flush(self):
        self.inner.flush()

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("budget", [1, shardcheck.BUDGET], ids=["each-record", "at-end"])
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-crc", "tf-reader"])
def test_corrupted_write_is_caught_by_the_worker(release, tmp_path, monkeypatch, budget,
                                                 compiled):
    if not compiled:
        _fallback(monkeypatch)
    monkeypatch.setattr(shardcheck, "BUDGET", budget)
    real_open = tfrecord.open_writer
    monkeypatch.setattr(tfrecord, "open_writer", lambda p, *a: _BadWriter(
        real_open(p, *a), VICTIM in os.path.basename(p)))
    out = str(tmp_path / "out")
    with pytest.raises(UserError) as err:
        _convert(release, out)
    _assert_caught(err, out, "record 2 (read back after writing): image/encoded differs "
                   "from the planned image bytes")


@pytest.mark.parametrize("budget", [1, 3000, shardcheck.BUDGET])
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-crc", "tf-reader"])
def test_unchanged_shards_pass_the_same_checks(release, tmp_path, monkeypatch, compiled,
                                               budget):
    """The injection points without a fault: the checks above are what fails, also
    when the shard is checked in parts."""
    if not compiled:
        _fallback(monkeypatch)
    monkeypatch.setattr(shardcheck, "BUDGET", budget)
    real_finish = shardcheck.ShardCheck.finish
    seen = []
    monkeypatch.setattr(shardcheck.ShardCheck, "finish",
                        lambda self: seen.append(self.path) or real_finish(self))
    real_open = tfrecord.open_writer
    monkeypatch.setattr(tfrecord, "open_writer",
                        lambda p, *a: _BadWriter(real_open(p, *a), False))
    stats, _ = _convert(release, str(tmp_path / "out"))
    assert len(seen) == 15
    assert stats["checked"] == {"train": 48, "validation": 12}


def test_biggest_shards_go_first(release, tmp_path, monkeypatch):
    """Biggest first, in plan order where equal; before all, the (small) shards
    holding an image re-encoded with TensorFlow's kernels, so that one worker
    loads them."""
    order = []
    real = worker.write_shard
    monkeypatch.setattr(worker, "write_shard", lambda job: order.append(
        (os.path.basename(job[0]), len(job[1]),
         any(image.special_kind(it.relpath) for it in job[1]))) or real(job))
    _convert(release, str(tmp_path / "out"))
    first = [name for name, _, special in order if special]
    assert first and [special for _, _, special in order] == \
        [True] * len(first) + [False] * (len(order) - len(first))
    rest = [(name, n) for name, n, special in order if not special]
    plan_order = ["train-%05d-of-00010" % k for k in range(10)] + \
        ["validation-%05d-of-00005" % k for k in range(5)]
    sizes = dict((name, n) for name, n, _ in order)
    # equal sizes keep the plan order: training before validation, by shard number
    assert first == sorted(first, key=lambda name: (-sizes[name], plan_order.index(name)))
    assert [name for name, _ in rest] == \
        sorted((name for name, _ in rest), key=lambda name: (-sizes[name],
                                                               plan_order.index(name)))
    assert sorted(n for _, n, _ in order) == sorted([5] * 9 + [3] * 5 + [0])


def test_workers_check_and_the_summary_says_so(release, tmp_path):
    """A real run with 2 worker processes (1024 + 128 shards)."""
    r = run_cmd(["./build.sh", release, "-o", str(tmp_path / "out"), "-j", "2"])
    assert r.returncode == 0, r.stderr
    assert "verified: 48 train and 12 validation records, every image once with its " \
        "label (each shard read back by the worker that wrote it" in r.stderr
