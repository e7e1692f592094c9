"""The Hugging Face copy (parquet and tar.gz layouts) converts to the very records the
release tars give: same shards, same bytes; every row checked, every refusal one
line; each file read once into the spool, resumable after kill -9."""

import io
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import REPO, run_cmd
from ilsvrc import pool, shipped
from ilsvrc.errors import UserError
from ilsvrc.formats import official
from ilsvrc.testing import hfsample, sample

pytest.importorskip("pyarrow")


PARQUET_FILES = {"train": 12, "validation": 9, "test": 1}
VAL1 = "validation-00001-of-00009.parquet"


def _shards(out):
    """{relative path: bytes} of every shard under out (train/ and validation/)."""
    got = {}
    for sub in ("train", "validation"):
        for name in sorted(os.listdir(os.path.join(out, sub))):
            if "-of-" in name and not name.startswith("."):
                with open(os.path.join(out, sub, name), "rb") as f:
                    got[sub + "/" + name] = f.read()
    return got


def _convert(raw, out, **kw):
    log = io.StringIO()
    with pool.Pool(0) as runner:
        official.convert(raw, out, runner, log=log,
                         index_file=os.path.join(out, "ilsvrc-source.index"), **kw)
    return log.getvalue()


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """(release dir, {layout: copy dir}, reference shards of the release tars): the
    sample's validation images labelled as the shipped file labels them, so both
    routes take the same (shipped) label file."""
    root = tmp_path_factory.mktemp("hf")
    rel = str(root / "release")
    sample.generate(rel)
    lines = shipped.read_lines(shipped.VAL_LABELS_FILE)[:12]
    with open(os.path.join(rel, "synset_labels.txt"), "w") as f:
        f.write("".join(s + "\n" for s in lines))
    copies = {}
    for layout in ("parquet", "hf-tar"):
        copies[layout] = str(root / layout)
        # more files than a process keeps open: each shard reads from all of them
        hfsample.write(rel, copies[layout], layout, files=PARQUET_FILES)
    os.remove(os.path.join(rel, "synset_labels.txt"))
    _convert(rel, str(root / "ref"))
    return rel, copies, _shards(str(root / "ref"))


def _copy(hf, layout, tmp_path):
    dst = str(tmp_path / layout)
    shutil.copytree(hf[1][layout], dst)
    return dst


def test_parquet_copy_gives_the_release_records_through_build_sh(hf, tmp_path):
    out = str(tmp_path / "out")
    r = run_cmd(["./build.sh", hf[1]["parquet"], "-o", out, "-j", "2"])
    assert r.returncode == 0, r.stderr
    assert _shards(out) == hf[2]
    assert "parquet copy in %s: 30 training and 12 validation images" % hf[1]["parquet"] \
        in r.stderr
    assert "3 test images skipped (no labels)" in r.stderr
    # the spooled images are gone after the complete run, their lists stay
    spool = os.path.join(out, "ilsvrc-spool")
    assert not [n for d, _, ns in os.walk(spool) for n in ns if n.endswith(".img")]
    assert len([n for d, _, ns in os.walk(spool) for n in ns if n.endswith(".idx")]) == 21
    v = run_cmd(["./verify.sh", "official", out, "--source", hf[1]["parquet"]])
    assert v.returncode == 0, v.stderr
    assert "every one of the 42 images" in v.stdout + v.stderr


def test_tar_gz_copy_gives_the_release_records(hf, tmp_path):
    out = str(tmp_path / "out")
    log = _convert(hf[1]["hf-tar"], out)
    assert _shards(out) == hf[2]
    assert "hf-tar copy in" in log


def test_rerun_reads_nothing_again_and_a_changed_file_is_read_again(hf, tmp_path):
    copy = _copy(hf, "parquet", tmp_path)
    out = str(tmp_path / "out")
    first = _convert(copy, out)
    assert "unpacking 21 files" in first
    again = _convert(copy, out)
    assert "unpacking" not in again
    changed = os.path.join(copy, "data", VAL1)
    st = os.stat(changed)
    with open(changed, "r+b") as f:     # same bytes, same size, same mtime: ctime moves
        head = f.read(4)
        f.seek(0)
        f.write(head)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.rmtree(os.path.join(out, "validation"))
    third = _convert(copy, out)
    assert "unpacking 1 files" in third
    assert _shards(out) == hf[2]


def _rewrite_parquet(path, edit):
    """Rewrite one parquet file of a copy with edit(rows) applied to its
    [(name, label, bytes)] rows."""
    import pyarrow.parquet as pq
    table = pq.read_table(path).to_pylist()
    rows = [(r["image"]["path"], r["label"], r["image"]["bytes"]) for r in table]
    hfsample.write_parquet(path, edit(rows))


def _refusal(copy, tmp_path, *needles, **kw):
    with pytest.raises(UserError) as err:
        _convert(copy, str(tmp_path / "out-refused"), **kw)
    text = str(err.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, text
    return text


TRAIN0 = os.path.join("data", "train-00000-of-00012.parquet")


@pytest.mark.parametrize("edit,needles", [
    (lambda rows: [(rows[0][0], (rows[0][1] + 1) % 1000, rows[0][2])] + rows[1:],
     ("row 0", "has label", "Delete it and rerun")),
    (lambda rows: [("img_%d.jpg" % 1, rows[0][1], rows[0][2])] + rows[1:],
     ("row 0", "is not a train image name", "n01440764_10026_n01440764.JPEG")),
    (lambda rows: [("n01440764_5_n01443537.JPEG", rows[0][1], rows[0][2])] + rows[1:],
     ("row 0", "names synset n01440764 but carries the suffix n01443537",)),
    (lambda rows: rows[:2] + [rows[0]] + rows[2:],
     ("row 2", "appears twice")),
])
def test_a_bad_row_is_refused_naming_file_and_row(hf, tmp_path, edit, needles):
    copy = _copy(hf, "parquet", tmp_path)
    _rewrite_parquet(os.path.join(copy, TRAIN0), edit)
    text = _refusal(copy, tmp_path, *needles)
    assert TRAIN0 in text


def test_an_image_in_two_files_is_refused_naming_both(hf, tmp_path):
    copy = _copy(hf, "parquet", tmp_path)
    import pyarrow.parquet as pq
    first = pq.read_table(os.path.join(copy, TRAIN0)).to_pylist()[0]
    other = os.path.join(copy, "data", "train-00001-of-00012.parquet")
    _rewrite_parquet(other, lambda rows: rows + [(first["image"]["path"], first["label"],
                                                  first["image"]["bytes"])])
    _refusal(copy, tmp_path, "train-00000-of-00012.parquet row 0",
             "train-00001-of-00012.parquet row", "holds an image twice")


def test_validation_synsets_checked_against_the_label_file(hf, tmp_path):
    copy = _copy(hf, "parquet", tmp_path)
    labels = str(tmp_path / "labels.txt")
    lines = shipped.read_lines(shipped.VAL_LABELS_FILE)[:12]
    lines[4] = "n01440764" if lines[4] != "n01440764" else "n01443537"
    with open(labels, "w") as f:
        f.write("".join(s + "\n" for s in lines))
    _refusal(copy, tmp_path, "ILSVRC2012_val_00000005.JPEG", labels, "disagree",
             label_file=labels)


@pytest.mark.parametrize("damage,needles", [
    ("missing", ("missing", VAL1, "incomplete")),
    ("truncated", (VAL1, "not a readable parquet file")),
    ("schema", (VAL1, "not the Hugging Face copy's")),
])
def test_damaged_or_missing_files_are_refused(hf, tmp_path, damage, needles):
    copy = _copy(hf, "parquet", tmp_path)
    path = os.path.join(copy, "data", VAL1)
    if damage == "missing":
        os.remove(path)
    elif damage == "truncated":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.table({"jpg": [b"x"], "cls": [1]}), path)
    _refusal(copy, tmp_path, *needles)


def test_truncated_tar_gz_is_refused(hf, tmp_path):
    copy = _copy(hf, "hf-tar", tmp_path)
    path = os.path.join(copy, "data", "train_images_2.tar.gz")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    _refusal(copy, tmp_path, "train_images_2.tar.gz", "not a complete tar.gz")


def test_special_image_in_another_format_is_noted_and_converted(hf, tmp_path):
    copy = _copy(hf, "parquet", tmp_path)
    jpeg = sample.make_image(__import__("random").Random(3), "rgb", 40, 32)
    for k in range(12):
        path = os.path.join(copy, "data", "train-%05d-of-00012.parquet" % k)
        _rewrite_parquet(path, lambda rows: [
            (n, lab, jpeg if n.startswith(sample.PNG_SAMPLE[:-5] + "_") else d)
            for n, lab, d in rows])
    log = _convert(copy, str(tmp_path / "out"))
    assert "n02105855_2933.JPEG is a PNG in the release but not in this copy" in log


def test_tasks_refuse_an_unpacked_copy_then_work_after_index_only(hf, tmp_path):
    out = str(tmp_path / "out")
    r = run_cmd(["./build.sh", hf[1]["parquet"], "-o", out, "--task-count", "2",
                 "--task-index", "0"])
    assert r.returncode != 0
    assert "--index-only" in r.stderr and "Traceback" not in r.stderr
    r = run_cmd(["./build.sh", hf[1]["parquet"], "-o", out, "--index-only"])
    assert r.returncode == 0, r.stderr
    for k in (0, 1):
        r = run_cmd(["./build.sh", hf[1]["parquet"], "-o", out, "--task-count", "2",
                     "--task-index", str(k)])
        assert r.returncode == 0, r.stderr
        assert "unpacking" not in r.stderr
    assert _shards(out) == hf[2]


def _big_tar_gz_copy(hf, tmp_path, per_file=1500):
    """An hf-tar copy with many small members (the sample's images under new names),
    so that unpacking one file takes long enough to be interrupted."""
    src = _copy(hf, "hf-tar", tmp_path)
    import tarfile
    with tarfile.open(os.path.join(src, "data", "train_images_0.tar.gz")) as t:
        base = [(m.name, t.extractfile(m).read()) for m in t]
    for k in range(5):
        members = []
        for i in range(per_file):
            name, data = base[i % len(base)]
            synset = name[:9]
            members.append(("%s_%d_%s.JPEG" % (synset, 100000 + k * per_file + i, synset),
                            data))
        sample._write_tar(os.path.join(src, "data", "train_images_%d.tar.gz" % k),
                          members, compress=True)
    return src


def test_kill_9_during_the_spool_pass_then_rerun_gives_the_same_records(hf, tmp_path):
    copy = _big_tar_gz_copy(hf, tmp_path)
    ref = str(tmp_path / "ref")
    _convert(copy, ref)
    out = str(tmp_path / "out")
    spool = os.path.join(out, "ilsvrc-spool", "train")
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(["./build.sh", copy, "-o", out, "-j", "1"], cwd=REPO,
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:      # the second file is being unpacked
            names = os.listdir(spool) if os.path.isdir(spool) else []
            if "train_images_1.tar.gz.img" in names and \
                    "train_images_1.tar.gz.idx" not in names:
                break
            assert proc.poll() is None, "the run ended before it could be stopped"
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    names = os.listdir(spool)
    assert "train_images_0.tar.gz.idx" in names
    assert "train_images_1.tar.gz.idx" not in names
    r = run_cmd(["./build.sh", copy, "-o", out])
    assert r.returncode == 0, r.stderr
    assert "unpacking 5 files" in r.stderr       # 4 train files + validation
    assert _shards(out) == _shards(ref)
    with open(os.path.join(spool, "train_images_0.tar.gz.idx")) as f:
        assert json.load(f)["drained"] is True


def test_slim_records_from_the_parquet_copy_equal_the_tars(tmp_path):
    rel = str(tmp_path / "release")
    sample.generate(rel, bbox=True)
    lines = shipped.read_lines(shipped.VAL_LABELS_FILE)[:12]
    with open(os.path.join(rel, "synset_labels.txt"), "w") as f:
        f.write("".join(s + "\n" for s in lines))
    copy = str(tmp_path / "hf")
    hfsample.write(rel, copy, "parquet")
    os.remove(os.path.join(rel, "synset_labels.txt"))
    shutil.copy(os.path.join(rel, "ILSVRC2012_bbox_train_v2.tar.gz"), copy)
    outs = {}
    for name, d in (("tars", rel), ("hf", copy)):
        r = run_cmd(["slim/download_and_convert_imagenet.sh", d])
        assert r.returncode == 0, r.stderr
        outs[name] = {n: open(os.path.join(d, n), "rb").read()
                      for n in os.listdir(d) if "-of-" in n and not n.startswith(".")}
    assert len(outs["tars"]) == 1024 + 128
    assert outs["hf"] == outs["tars"]
    assert "found 8 images with bboxes" in r.stderr


def test_a_parquet_copy_in_a_bucket(hf, gcs_emulator, tmp_path, monkeypatch):
    name = "hf-copy-%d" % os.getpid()
    gcs_emulator.bucket(name)
    data = os.path.join(hf[1]["parquet"], "data")
    gcs_emulator.upload_dir(name, "imagenet-1k/data/", data, sorted(os.listdir(data)))
    out = str(tmp_path / "out")
    monkeypatch.setenv("ILSVRC_INDEX_DIR", str(tmp_path / "index"))
    r = run_cmd(["./build.sh", "gs://%s/imagenet-1k" % name, "-o", out])
    assert r.returncode == 0, r.stderr
    assert "parquet copy in gs://%s/imagenet-1k" % name in r.stderr
    assert _shards(out) == hf[2]


def test_imagenet_to_gcs_reads_the_parquet_copy(hf, tmp_path):
    out = str(tmp_path / "out")
    r = run_cmd([".venv/bin/python", "official/imagenet_to_gcs.py",
                 "--raw_data_dir=" + hf[1]["parquet"], "--local_scratch_dir=" + out,
                 "--nogcs_upload"])
    assert r.returncode == 0, r.stderr
    assert _shards(out) == hf[2]
