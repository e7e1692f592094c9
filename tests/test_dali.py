"""DALI index files (--dali-index): format, layout, resume, verify, and DALI itself."""

import glob
import io
import os
import shutil
import struct

import pytest

from conftest import python, run_cmd
from ilsvrc import fsutil, pool, shipped
from ilsvrc.formats import bbox, slim
from ilsvrc.readerfiles import dali
from ilsvrc.write.finisher import Finisher


def tfrecord2idx(shard):
    """The rule of DALI's tools/tfrecord2idx, written independently: walk the file
    record by record and print the start of each record and its full framed size."""
    out = []
    with open(shard, "rb") as f:
        while True:
            start = f.tell()
            head = f.read(8)
            if not head:
                break
            f.read(4)
            (length,) = struct.unpack("<q", head)
            f.read(length)
            f.read(4)
            out.append("%d %d\n" % (start, f.tell() - start))
    return "".join(out).encode()


def _shards(directory, prefix):
    return sorted(glob.glob(os.path.join(directory, prefix + "-*")))


def _indexes(root, prefix):
    return sorted(glob.glob(os.path.join(root, "dali-index", prefix, "*")))


@pytest.fixture(scope="module")
def official_out(sample_release, tmp_path_factory):
    """imagenet_to_gcs.py (absl flags) with --dali_index: 1152 shards, each empty or
    holding one record."""
    src, _ = sample_release
    out = str(tmp_path_factory.mktemp("dali-official") / "out")
    r = run_cmd([python(), "official/imagenet_to_gcs.py", "--raw_data_dir=" + src,
                 "--local_scratch_dir=" + out, "--nogcs_upload", "--dali_index",
                 "--num_workers=1"])
    assert r.returncode == 0, r.stderr
    assert "the DALI index files match the shards" in r.stderr
    return out


@pytest.fixture(scope="module")
def slim_out(slim_release, tmp_path_factory):
    """The slim format with 4 + 2 shards, so shards hold several records, with boxes."""
    src, _ = slim_release
    tmp = tmp_path_factory.mktemp("dali-slim")
    csv = str(tmp / "boxes.csv")
    bbox.write_csv(os.path.join(src, bbox.ARCHIVE), csv,
                   set(slim.load_synsets(shipped.SYNSETS_FILE)))
    out = str(tmp / "out")
    os.makedirs(out)
    with pool.Pool(0) as runner:
        slim.convert(out, runner, source_dir=src, bbox_file=csv, train_shards=4,
                     val_shards=2, num_threads=2, dali_index=True, log=io.StringIO())
    return out


def _pairs(root, layout):
    for sub, prefix in layout:
        shards = _shards(os.path.join(root, sub), prefix)
        indexes = _indexes(root, prefix)
        assert [os.path.basename(p) + ".idx" for p in shards] == \
            [os.path.basename(p) for p in indexes]
        yield from zip(shards, indexes)


OFFICIAL = (("train", "train"), ("validation", "validation"))
SLIM = (("", "train"), ("", "validation"))


def test_index_files_equal_tfrecord2idx_byte_for_byte(official_out, slim_out):
    sizes = set()
    for root, layout in ((official_out, OFFICIAL), (slim_out, SLIM)):
        pairs = list(_pairs(root, layout))
        assert len(pairs) == (1152 if layout is OFFICIAL else 6)
        for shard, index in pairs:
            with open(index, "rb") as f:
                got = f.read()
            assert got == tfrecord2idx(shard), index
            sizes.add(min(got.count(b"\n"), 2))
    assert sizes == {0, 1, 2}   # empty, one-record and several-record shards all seen


def test_no_shard_glob_matches_the_index_files(official_out, slim_out):
    for pattern in ("train-*", "train*", "validation-*", "validation*"):
        for d in (os.path.join(official_out, "train"),
                  os.path.join(official_out, "validation"), slim_out):
            for p in glob.glob(os.path.join(d, pattern)):
                assert os.path.isfile(p) and "-of-" in p and not p.endswith(".idx")
    assert not glob.glob(os.path.join(official_out, "*", "*.idx"))


def test_written_without_the_option_then_resumed_with_it(sample_release, official_out,
                                                         tmp_path):
    """A run without --dali-index, then the same command with it: no shard is
    rewritten, and the index files are those of a run that had it from the start."""
    src, _ = sample_release
    out = str(tmp_path / "out")
    cmd = ["./build.sh", src, "-o", out, "-j", "1", "--no-verify"]
    r = run_cmd(cmd)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(out, "dali-index"))
    mtimes = {p: os.stat(p).st_mtime_ns for p in _shards(os.path.join(out, "train"), "train")}
    r = run_cmd(cmd[:-1] + ["--dali-index"])
    assert r.returncode == 0, r.stderr
    assert "wrote the missing DALI index files of finished train shards" in r.stderr
    assert "1152 shards already complete" in r.stderr
    assert mtimes == {p: os.stat(p).st_mtime_ns for p in mtimes}
    for (_, mine), (_, fresh) in zip(_pairs(out, OFFICIAL), _pairs(official_out, OFFICIAL)):
        with open(mine, "rb") as a, open(fresh, "rb") as b:
            assert a.read() == b.read()


def test_a_changed_plan_removes_stale_index_files(slim_release, slim_out, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(slim_out, out)
    # another plan refuses to touch finished shards; the user removes them as told,
    # and the index files those shards left behind go with the next run
    for name in os.listdir(out):
        if name.startswith(("train-", "validation-")):
            os.remove(os.path.join(out, name))
    with pool.Pool(0) as runner:   # other shard counts, no index
        slim.convert(out, runner, source_dir=slim_release[0], bbox_file="",
                     train_shards=2, val_shards=4, num_threads=2, log=io.StringIO())
    assert _indexes(out, "train") == [] and _indexes(out, "validation") == []


def test_index_becomes_final_before_its_shard(tmp_path):
    """A final shard name implies its index is there: when the index cannot be
    finished, the shard stays a partial file and the error names the index."""
    shard = str(tmp_path / "train-00000-of-00001")
    index = str(tmp_path / "idx" / "train-00000-of-00001.idx")
    with open(fsutil.partial_path(shard), "wb") as f:
        f.write(b"")
    finisher = Finisher()
    finisher.add(shard, index)     # no partial index was written
    with pytest.raises(Exception) as err:
        finisher.close()
    assert index in str(err.value)
    assert not os.path.exists(shard)


def _verify(fmt, out):
    return run_cmd(["./verify.sh", fmt, out, "-j", "1"])


def test_verify_checks_the_index_files(official_out, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(official_out, out)
    r = _verify("official", out)
    assert r.returncode == 0, r.stderr
    assert "DALI index files (%s/dali-index): all 1152 match their shards" % out \
        in r.stdout
    wrong = next(p for p in _indexes(out, "train") if os.path.getsize(p))
    with open(wrong, "rb") as f:
        offset, length = f.read().split()
    with open(wrong, "wb") as f:
        f.write(b"%s %d\n" % (offset, int(length) + 1))
    missing = _indexes(out, "validation")[0]
    os.remove(missing)
    stray = os.path.join(out, "dali-index", "train", "train-01024-of-01024.idx")
    open(stray, "w").close()
    r = _verify("official", out)
    assert r.returncode == 1
    assert "%s line 1 is '%s %s'" % (wrong, offset.decode(), int(length) + 1) in r.stderr
    assert missing + " is missing" in r.stderr
    assert stray + ": not the index of a shard" in r.stderr
    assert "Traceback" not in r.stderr


def test_record_sizes_rejects_a_truncated_shard(slim_out, tmp_path):
    shard = _shards(slim_out, "train")[0]
    cut = str(tmp_path / os.path.basename(shard))
    with open(shard, "rb") as f, open(cut, "wb") as g:
        g.write(f.read()[:-3])
    with pytest.raises(dali.BadShard, match="runs past the end"):
        dali.record_sizes(cut)
    problem = dali.check_one((cut, str(tmp_path / "x.idx")))
    assert "is missing" in problem
    open(str(tmp_path / "x.idx"), "w").close()
    assert "runs past the end" in dali.check_one((cut, str(tmp_path / "x.idx")))


def test_dali_reads_every_record_with_the_index(slim_out, official_out):
    dali_pkg = pytest.importorskip(
        "nvidia.dali", reason="nvidia.dali is not installed (pip install "
        "nvidia-dali-cuda120==2.4.0 to run this test; not a project requirement)")
    fn, types, tfrec = dali_pkg.fn, dali_pkg.types, dali_pkg.tfrecord
    from slim_helpers import records
    for root, layout in ((slim_out, SLIM), (official_out, OFFICIAL)):
        for sub, prefix in layout:
            shards = _shards(os.path.join(root, sub), prefix)
            indexes = _indexes(root, prefix)
            pairs = list(zip(shards, indexes))   # empty shards and index files too
            want = sorted((r["image/filename"][1][0], r["image/class/label"][1][0])
                          for s, _ in pairs for r in records(s))

            @dali_pkg.pipeline_def(batch_size=1, num_threads=1, device_id=None)
            def pipe():
                rec = fn.readers.tfrecord(
                    path=[s for s, _ in pairs], index_path=[i for _, i in pairs],
                    features={"image/encoded": tfrec.FixedLenFeature((), tfrec.string, ""),
                              "image/filename": tfrec.FixedLenFeature((), tfrec.string, ""),
                              "image/class/label": tfrec.FixedLenFeature([1], tfrec.int64,
                                                                         -1)},
                    random_shuffle=False, name="reader")
                images = fn.decoders.image(rec["image/encoded"], device="cpu",
                                           output_type=types.RGB)
                return images, rec["image/filename"], rec["image/class/label"]

            p = pipe()
            p.build()
            got = []
            for _ in range(len(want)):
                images, names, labels = p.run()
                assert images.at(0).shape[2] == 3
                got.append((bytes(names.at(0)), int(labels.at(0)[0])))
            assert sorted(got) == want


def test_pytorch_tfrecord_package_uses_the_same_index(slim_out):
    """The `tfrecord` package (PyTorch) reads DALI-format index files too: with
    shard=(i, n) it seeks to the offsets they list.  It runs in a process of its own:
    its protobuf definitions clash with TensorFlow's in one process."""
    import importlib.util
    if importlib.util.find_spec("tfrecord") is None:
        pytest.skip("the tfrecord package is not installed (pip install "
                    "tfrecord==1.14.6 to run this test; not a project requirement)")
    from slim_helpers import records
    code = ("import sys\nfrom tfrecord.reader import tfrecord_loader\n"
            "for part in range(2):\n"
            "    for rec in tfrecord_loader(sys.argv[1], sys.argv[2],\n"
            "                               {'image/filename': 'byte'}, shard=(part, 2)):\n"
            "        print(bytes(rec['image/filename']).decode())\n")
    for shard, index in _pairs(slim_out, SLIM):
        want = [r["image/filename"][1][0].decode() for r in records(shard)]
        r = run_cmd([python(), "-c", code, shard, index])
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == want
