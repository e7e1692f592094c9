"""The official (tensorflow/tpu) format end to end on a generated release."""

import glob
import io
import os
import random
import shutil
import tarfile

import pytest

from conftest import python, run_cmd, shard_records
from ilsvrc import pool, shipped
from ilsvrc.records import features, image
from ilsvrc.formats import official
from ilsvrc.sources import tarindex

KEYS = set(official.SCHEMA)


def _convert(raw, out, workers=0, **kw):
    with pool.Pool(workers) as runner:
        return official.convert(raw, out, runner, log=io.StringIO(), **kw)


@pytest.fixture(scope="module")
def converted(sample_release, official_sample):
    raw, manifest = sample_release
    return raw, manifest, official_sample


def _shards(out, split, n):
    return [os.path.join(out, split, "%s-%05d-of-%05d" % (split, k, n)) for k in range(n)]


def _expected_train(manifest):
    """Upstream's order, computed independently: sorted paths, seed 0, one shuffle."""
    paths = sorted("%s/%s" % (s, name) for s, names in manifest["train"].items()
                   for name in names)
    idx = list(range(len(paths)))
    random.seed(0)
    random.shuffle(idx)
    return [paths[i] for i in idx]


def test_all_shards_exist_with_upstream_names(converted):
    _, _, out = converted
    names = set(os.listdir(os.path.join(out, "train")))
    assert {os.path.basename(p) for p in _shards(out, "train", 1024)} <= names
    assert len([n for n in names if n.startswith("train-")]) == 1024
    vnames = [n for n in os.listdir(os.path.join(out, "validation"))
              if n.startswith("validation-")]
    assert len(vnames) == 128 and "validation-00127-of-00128" in vnames
    assert not glob.glob(os.path.join(out, "*", "*.partial"))


def test_train_order_labels_and_shard_membership(converted):
    _, manifest, out = converted
    expected = _expected_train(manifest)
    synsets = sorted(set(manifest["train"]) | set(manifest["val"]))
    chunk = -(-len(expected) // 1024)
    for k, path in enumerate(_shards(out, "train", 1024)):
        want = expected[k * chunk:(k + 1) * chunk]
        recs = shard_records(path)
        assert [r["image/filename"][1][0].decode() for r in recs] == \
            [p.split("/")[1] for p in want]
        for rec, p in zip(recs, want):
            syn = p.split("/")[0]
            assert rec["image/class/synset"][1] == [syn.encode()]
            assert rec["image/class/label"][1] == [synsets.index(syn) + 1]
        if not want:
            assert os.path.getsize(path) == 0


def test_validation_sorted_unshuffled_labelled_by_line(converted):
    _, manifest, out = converted
    synsets = sorted(set(manifest["train"]) | set(manifest["val"]))
    got = [r for p in _shards(out, "validation", 128) for r in shard_records(p)]
    assert [r["image/filename"][1][0].decode() for r in got] == \
        ["ILSVRC2012_val_%08d.JPEG" % k for k in range(1, len(manifest["val"]) + 1)]
    assert [r["image/class/synset"][1][0].decode() for r in got] == manifest["val"]
    assert [r["image/class/label"][1][0] for r in got] == \
        [synsets.index(s) + 1 for s in manifest["val"]]


def test_records_parse_with_tf_data_and_have_the_nine_features(converted, tf):
    _, _, out = converted
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/format": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/class/synset": tf.io.FixedLenFeature([], tf.string),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/channels": tf.io.FixedLenFeature([], tf.int64),
        "image/colorspace": tf.io.FixedLenFeature([], tf.string),
        "image/filename": tf.io.FixedLenFeature([], tf.string),
    }
    files = sorted(glob.glob(os.path.join(out, "train", "train-*")) +
                   glob.glob(os.path.join(out, "validation", "validation-*")))
    n = 0
    for raw in tf.data.TFRecordDataset(files):
        ex = tf.io.parse_single_example(raw, spec)
        img = tf.io.decode_jpeg(ex["image/encoded"], channels=3)
        assert img.shape[0] == int(ex["image/height"])
        assert img.shape[1] == int(ex["image/width"])
        assert ex["image/colorspace"].numpy() == b"RGB" and int(ex["image/channels"]) == 3
        assert ex["image/format"].numpy() == b"JPEG"
        assert set(features.decode(raw.numpy())) == KEYS
        n += 1
    assert n == 30 + 12


def _member_bytes(raw, synset, name):
    with tarfile.open(os.path.join(raw, tarindex.TRAIN_TAR)) as outer:
        inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(synset + ".tar").read()))
        return inner.extractfile(name).read()


def test_special_images_reencoded_like_upstream(converted, tf):
    raw, _, out = converted
    recs = {r["image/filename"][1][0].decode(): r
            for p in _shards(out, "train", 1024) for r in shard_records(p)}
    specials = [n for n in recs if image.special_kind(n)]
    assert sorted(specials) == sorted(["n01739381_1309.JPEG", "n02077923_14822.JPEG",
                                       "n07583066_647.JPEG", "n02105855_2933.JPEG"])
    for name in specials:
        src = _member_bytes(raw, name.split("_")[0], name)
        if name == "n02105855_2933.JPEG":
            assert src.startswith(b"\x89PNG")
            pixels = tf.io.decode_png(src, channels=3)
        else:
            pixels = tf.io.decode_jpeg(src, channels=0)
        want = tf.io.encode_jpeg(pixels, format="rgb", quality=100).numpy()
        got = recs[name]["image/encoded"][1][0]
        assert got == want
        assert tf.io.decode_jpeg(got).shape[2] == 3


def test_grayscale_and_plain_images_stored_unchanged(converted, tf):
    raw, _, out = converted
    gray = 0
    for p in _shards(out, "train", 1024):
        for r in shard_records(p):
            name = r["image/filename"][1][0].decode()
            if image.special_kind(name):
                continue
            enc = r["image/encoded"][1][0]
            assert enc == _member_bytes(raw, name.split("_")[0], name)
            if tf.io.decode_jpeg(enc, channels=0).shape[2] == 1:
                gray += 1
    assert gray >= 3


def test_output_identical_across_runs_and_worker_counts(converted, tmp_path):
    raw, _, out = converted
    out2 = str(tmp_path / "two-workers")
    _convert(raw, out2, workers=2)
    for split, n in (("train", 1024), ("validation", 128)):
        for a, b in zip(_shards(out, split, n), _shards(out2, split, n)):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert fa.read() == fb.read(), a


def test_extracted_tree_gives_identical_records(converted, tmp_path):
    raw, _, out = converted
    tree = str(tmp_path / "tree")
    shutil.copytree(raw, tree)
    r = run_cmd(["./build.sh", tree, "--extract", "-j", "0", "-o", str(tmp_path / "tar-out")])
    assert r.returncode == 0, r.stderr
    for tarname in (tarindex.TRAIN_TAR, tarindex.VAL_TAR):
        os.remove(os.path.join(tree, tarname))
    assert len(os.listdir(os.path.join(tree, "validation"))) == 12
    out_tree = str(tmp_path / "tree-out")
    r = run_cmd([python(), "official/imagenet_to_gcs.py", "--raw_data_dir=" + tree,
                 "--local_scratch_dir=" + out_tree, "--nogcs_upload", "--num_workers=0"])
    assert r.returncode == 0, r.stderr
    assert "(tree)" in r.stderr
    for split, n in (("train", 1024), ("validation", 128)):
        for a, b in zip(_shards(out, split, n), _shards(out_tree, split, n)):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert fa.read() == fb.read(), a


def test_build_sh_default_layout_progress_and_rerun(release_copy):
    raw, _ = release_copy
    r = run_cmd(["./build.sh", raw, "-j", "2"])
    assert r.returncode == 0, r.stderr
    assert "images/s" in r.stderr and "ETA" in r.stderr and "verified" in r.stderr
    assert os.path.getsize(os.path.join(raw, "tf_records", "train", "train-00000-of-01024"))
    names = os.listdir(os.path.join(raw, "tf_records", "validation"))
    assert len([n for n in names if not n.startswith(".")]) == 128
    # hidden: the plan state only, no lock, owner or partial file left
    assert sorted(n for n in names if n.startswith(".")) == [".validation-of-00128.plan"]
    r = run_cmd(["./build.sh", raw, "-j", "0"])
    assert r.returncode == 0 and "1152 shards already complete" in r.stderr


def test_build_sh_help():
    r = run_cmd(["./build.sh", "--help"])
    assert r.returncode == 0
    for flag in ("--output", "--workers", "--extract", "--check", "--no-verify"):
        assert flag in r.stdout


def test_shipped_label_file_used_when_dir_has_none(release_copy):
    raw, manifest = release_copy
    os.remove(os.path.join(raw, "synset_labels.txt"))
    out = os.path.join(raw, "out")
    log = io.StringIO()
    with pool.Pool(0) as runner:
        official.convert(raw, out, runner, log=log)
    assert "imagenet_2012_validation_synset_labels.txt" in log.getvalue()
    real = open(shipped.VAL_LABELS_FILE).read().split()
    recs = shard_records(os.path.join(out, "validation", "validation-00000-of-00128"))
    assert recs[0]["image/class/synset"][1][0].decode() == real[0]


# ----------------------------------------------------------------- flags and errors

def _gcs(*flags):
    return run_cmd([python(), "official/imagenet_to_gcs.py"] + list(flags))


def _one_clean_error(r, text):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert text in r.stderr, r.stderr


@pytest.mark.parametrize("flags,text", [
    ([], "--project is required"),
    (["--project=p"], "--gcs_output_path is required"),
    (["--project=p", "--gcs_output_path=/tmp/x"], "must start with gs://"),
    (["--nogcs_upload"], "--local_scratch_dir is required"),
    (["--gcs_upload=false", "--local_scratch_dir=/tmp/x"], "--raw_data_dir is required"),
    (["--nogcs_upload", "--local_scratch_dir=/tmp/x", "--raw_data_dir=/nonexistent"],
     "/nonexistent is not a directory"),
    (["--nogcs_upload", "--bogus_flag"], "bogus_flag"),
])
def test_flag_validation_in_upstream_order(flags, text):
    _one_clean_error(_gcs(*flags), text)


def test_short_label_file_is_an_error_not_a_misalignment(release_copy):
    raw, _ = release_copy
    with open(os.path.join(raw, "synset_labels.txt"), "w") as f:
        f.write("n01440764\n" * 5)
    r = run_cmd(["./build.sh", raw, "-j", "0"])
    _one_clean_error(r, "synset_labels.txt has 5 lines but there is a validation image "
                        "ILSVRC2012_val_00000006.JPEG")


def _rewrite_member(tar_path, inner, name, payload):
    """Replace member `name` of inner tar `inner` in the outer training tar."""
    with tarfile.open(tar_path) as outer:
        members = [(m, outer.extractfile(m).read()) for m in outer.getmembers()]
    out = []
    for m, data in members:
        if m.name == inner:
            src = tarfile.open(fileobj=io.BytesIO(data))
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as dst:
                for im in src.getmembers():
                    body = payload if im.name == name else src.extractfile(im).read()
                    im.size = len(body)
                    dst.addfile(im, io.BytesIO(body))
            data = buf.getvalue()
            m.size = len(data)
        out.append((m, data))
    with tarfile.open(tar_path, "w") as t:
        for m, data in out:
            t.addfile(m, io.BytesIO(data))


def test_corrupt_image_stops_with_the_member_named(release_copy):
    raw, manifest = release_copy
    name = manifest["train"]["n01440764"][0]
    tar_path = os.path.join(raw, tarindex.TRAIN_TAR)
    good = _member_bytes(raw, "n01440764", name)
    _rewrite_member(tar_path, "n01440764.tar", name, good[:len(good) // 2])
    r = run_cmd(["./build.sh", raw, "-j", "2"])
    _one_clean_error(r, "ILSVRC2012_img_train.tar: n01440764.tar/%s: truncated" % name)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()[-1]) < 400
    leftovers = glob.glob(os.path.join(raw, "tf_records", "*", "*.partial"))
    assert leftovers == []


def test_non_jpeg_member_is_refused(release_copy):
    raw, manifest = release_copy
    name = manifest["train"]["n15075141"][0]
    _rewrite_member(os.path.join(raw, tarindex.TRAIN_TAR), "n15075141.tar", name,
                    b"GIF89a not a jpeg at all")
    r = run_cmd(["./build.sh", raw, "-j", "0", "--check", "decode"])
    _one_clean_error(r, "n15075141.tar/%s: cannot be decoded as JPEG" % name)
    # another --check is another plan: a fresh output directory (the first one's
    # finished shards are kept, never replaced)
    r = run_cmd(["./build.sh", raw, "-j", "0", "-o", os.path.join(raw, "header")])
    _one_clean_error(r, "n15075141.tar/%s: not a JPEG" % name)


def test_missing_tar_is_named(release_copy):
    raw, _ = release_copy
    os.remove(os.path.join(raw, tarindex.VAL_TAR))
    r = run_cmd(["./build.sh", raw])
    _one_clean_error(r, "missing %s" % os.path.join(raw, tarindex.VAL_TAR))


def test_extract_indexes_the_training_tar_once(release_copy, monkeypatch, tmp_path):
    from ilsvrc.cli import build as cli_build
    raw, manifest = release_copy
    calls = []
    real = tarindex.index_train_tar
    monkeypatch.setattr(tarindex, "index_train_tar",
                        lambda *args: calls.append(args) or real(*args))
    out = str(tmp_path / "out")
    assert cli_build.main([raw, "-o", out, "-j", "0", "--extract", "--no-verify"]) == 0
    assert len(calls) == 1
    synset = sorted(manifest["train"])[0]
    assert sorted(os.listdir(os.path.join(raw, "train", synset))) == manifest["train"][synset]
    # + the plan state (no lock file stays)
    assert len(os.listdir(os.path.join(out, "train"))) == 1024 + 1
