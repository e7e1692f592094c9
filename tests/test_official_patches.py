"""Focused checks behind the change records in patches/imagenet_to_gcs.py.patch and
patches/build.sh.patch that the end-to-end tests in test_official.py do not pin down.

No conversion runs here: planning, helpers and the front ends' early exits only.
"""

import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import REPO, python, run_cmd
from ilsvrc import plan, pool, shipped
from ilsvrc.sources import discover, tarindex
from ilsvrc.records import features, image, jpeg
from ilsvrc.formats import official
from ilsvrc.sources.listing import Listing
from ilsvrc.errors import UserError

FRONT_END = os.path.join(REPO, "official", "imagenet_to_gcs.py")
BUILD_SH = os.path.join(REPO, "build.sh")


def _no_traceback_error(r, text, code=None):
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert text in r.stderr, r.stderr
    if code is not None:
        assert r.returncode == code


def _listings(train_pairs, val_count):
    """Listings without files behind them (planning only reads names and groups)."""
    train = Listing("train")
    train.root = "/nowhere/train"
    for group, name in train_pairs:
        train.add(name, group)
    val = Listing("validation")
    val.root = "/nowhere/validation"
    for k in range(val_count, 0, -1):          # added out of order on purpose
        val.add("ILSVRC2012_val_%08d.JPEG" % k, "")
    return train, val


def _items(split):
    return [split.item(j) for j in range(split.count)]


# ------------------------------------------------------------------ P1, DOC-L177/179/187/189

def test_text_features_are_utf8_bytes():
    feats = features.common_features(b"\xff\xd8jpeg", 7, 9, "caf\u00e9_1.JPEG")
    kinds = {k: kind for k, (kind, _) in feats.items()}
    for key, (kind, values) in feats.items():
        if kind == features.BYTES:
            assert all(isinstance(v, bytes) for v in values), key
    assert feats["image/colorspace"][1] == [b"RGB"]
    assert feats["image/format"][1] == [b"JPEG"]
    assert feats["image/filename"][1] == ["caf\u00e9_1.JPEG".encode("utf-8")]
    assert kinds["image/height"] == kinds["image/width"] == features.INT64
    train, val = _listings([("n01440764", "n01440764_1.JPEG")], 1)
    splits, _ = official.make_splits(train, val, ["n01440764"], "L", "/out")
    for split in splits:
        for item in _items(split):
            assert item.features["image/class/synset"] == (features.BYTES, [b"n01440764"])


# ------------------------------------------------------------------ P10

def test_label_dict_built_from_str_synsets_only(sample_release):
    raw, manifest = sample_release
    with pool.Pool(0) as runner:
        train = tarindex.index_train_tar(os.path.join(raw, tarindex.TRAIN_TAR), runner)
    val = tarindex.index_flat_tar(os.path.join(raw, tarindex.VAL_TAR))
    lines = shipped.read_lines(os.path.join(raw, "synset_labels.txt"))
    assert train.group_names and all(type(g) is str for g in train.group_names)
    assert lines and all(type(s) is str for s in lines)
    labels = plan.labels_from_synsets(lines + train.group_names)
    assert all(type(s) is str for s in labels)
    splits, num_labels = official.make_splits(train, val, lines, "L", "/out")
    assert num_labels == len(labels)
    for split in splits:
        for item in _items(split):
            synset = item.features["image/class/synset"][1][0]
            assert item.features["image/class/label"][1] == [labels[synset.decode("ascii")]]


# ------------------------------------------------------------------ P11

def test_no_tf1_graph_apis_in_the_port(sample_release, tmp_path):
    """The whole official conversion (decode check, writing, verify) in one process
    with TF1's graph entry points refused: it runs, and TensorFlow stays eager."""
    code = ("import io, sys\n"
            "from ilsvrc.tfimport import tensorflow\ntf = tensorflow()\n"
            "def refuse(*a, **k):\n    raise AssertionError('TF1 graph API used')\n"
            "for n in ('Session', 'InteractiveSession', 'placeholder', "
            "'disable_v2_behavior', 'disable_eager_execution'):\n"
            "    setattr(tf.compat.v1, n, refuse)\n"
            "from ilsvrc import pool\nfrom ilsvrc.formats import official\n"
            "with pool.Pool(0) as runner:\n"
            "    official.convert(sys.argv[1], sys.argv[2], runner, check='decode',\n"
            "                     log=io.StringIO())\n"
            "print(tf.executing_eagerly())\n")
    r = run_cmd([python(), "-c", code, sample_release[0], str(tmp_path / "out")])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "True"
    # + the plan state (no lock file stays)
    assert len(os.listdir(tmp_path / "out" / "train")) == official.TRAIN_SHARDS + 1


# ------------------------------------------------------------------ P13, P20

def test_missing_raw_data_dir_downloads_nothing(tmp_path):
    scratch = tmp_path / "scratch"
    r = run_cmd([python(), FRONT_END, "--nogcs_upload", "--local_scratch_dir=%s" % scratch])
    _no_traceback_error(r, "--raw_data_dir is required: downloading from image-net.org "
                           "is no longer supported", code=2)
    assert not scratch.exists()            # TPU-PY2 would make scratch/raw_data and fetch
    # and nothing that could fetch is even loaded on the way to that message
    code = ("import runpy, sys\nsys.argv = [sys.argv[1], '--nogcs_upload', "
            "'--local_scratch_dir=' + sys.argv[2]]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "print(code, sorted(m for m in ('urllib.request', 'http.client', 'requests') "
            "if m in sys.modules))")
    r = run_cmd([python(), "-c", code, FRONT_END, str(scratch)])
    assert r.stdout.split("\n")[-2] == "2 []", r.stdout + r.stderr
    assert not scratch.exists()


# ------------------------------------------------------------------ P16

def test_data_files_read_as_utf8_whatever_the_locale(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("n01440764\r\nn0144076\u00e9\r\n".encode("utf-8"))
    assert shipped.read_lines(str(path)) == ["n01440764", "n0144076\u00e9"]
    path.write_bytes(b"n01440764\n\xe9\n")       # Latin-1, not UTF-8
    with pytest.raises(UserError, match="labels.txt is not UTF-8 text"):
        shipped.read_lines(str(path), "validation label file")
    assert len(shipped.read_lines(shipped.VAL_LABELS_FILE)) == 50000
    # under an ASCII locale, where a plain text-mode open() of this file would fail
    path.write_bytes("n0144076\u00e9\n".encode("utf-8"))
    env = dict(os.environ, PYTHONUTF8="0", PYTHONCOERCECLOCALE="0", LC_ALL="C", LANG="C",
               PYTHONPATH=REPO)
    code = ("import locale, sys\nfrom ilsvrc import shipped\n"
            "print(locale.getpreferredencoding(False), ascii(shipped.read_lines(sys.argv[1])))")
    r = subprocess.run([python(), "-c", code, str(path)], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    encoding, lines = r.stdout.split()
    assert encoding.lower() in ("ascii", "ansi_x3.4-1968") and lines == "['n0144076\\xe9']"


# ------------------------------------------------------------------ A2

def test_training_plan_independent_of_listing_order():
    # synset-shaped names outside the 1000: a custom class set (ilsvrc.contract)
    pairs = [("n0000000%d" % (k % 3), "n0000000%d_%d.JPEG" % (k % 3, k)) for k in range(23)]
    lines = ["n00000000", "n00000001", "n00000002", "n00000000"]
    a = official.make_splits(*_listings(pairs, 4), lines, "L", "/o", True)[0]
    b = official.make_splits(*_listings(pairs[::-1], 4), lines, "L", "/o", True)[0]
    c = official.make_splits(*_listings(sorted(pairs), 4), lines, "L", "/o", True)[0]
    assert [_items(s) for s in a] == [_items(s) for s in b] == [_items(s) for s in c]
    # and the order is upstream's shuffle of the path-sorted list
    paths = sorted("%s/%s" % p for p in pairs)
    want = plan.apply_order(paths, plan.seeded_permutation(len(paths), 0))
    assert [it.relpath for it in _items(a[0])] == want


# ------------------------------------------------------------------ A8

def test_cmyk_validation_image_stored_unchanged(sample_release, tf):
    raw, _ = sample_release
    with tarfile.open(os.path.join(raw, tarindex.VAL_TAR)) as t:
        cmyk = t.extractfile("ILSVRC2012_val_00000003.JPEG").read()
    assert jpeg.header_info(cmyk)[2] == 4
    name = "ILSVRC2012_val_00019877.JPEG"
    assert image.special_kind(name) is None
    for check in image.CHECKS:
        encoded, height, width = image.prepare(cmyk, name, check)
        assert encoded == cmyk
        assert (height, width) == jpeg.header_info(cmyk)[:2]


# ------------------------------------------------------------------ build.sh

def test_build_sh_without_dir_is_a_usage_error():
    r = run_cmd(["./build.sh"])
    _no_traceback_error(r, "the following arguments are required: DIR", code=2)


def test_build_sh_keeps_a_dir_with_spaces_as_one_argument(tmp_path):
    missing = str(tmp_path / "my images" / "not here")
    r = run_cmd(["./build.sh", missing])
    _no_traceback_error(r, "build.sh: error: %s is not a directory" % missing, code=1)


def test_front_ends_run_from_any_directory(tmp_path):
    r = run_cmd([BUILD_SH, "--help"], cwd=str(tmp_path))
    assert r.returncode == 0 and "--extract" in r.stdout, r.stderr
    r = run_cmd([python(), FRONT_END, "--nogcs_upload"], cwd=str(tmp_path))
    _no_traceback_error(r, "--local_scratch_dir is required", code=2)


def test_empty_source_is_an_error_not_empty_shards(tmp_path):
    with pytest.raises(UserError, match="no ImageNet data in"):
        discover.find_source(str(tmp_path))
    train, val = _listings([], 3)
    with pytest.raises(UserError, match="found no training images"):
        official.make_splits(train, val, ["n01440764"] * 3, "L", str(tmp_path / "o"))
    train, val = _listings([("n01440764", "n01440764_1.JPEG")], 0)
    with pytest.raises(UserError, match="found no validation images"):
        official.make_splits(train, val, ["n01440764"], "L", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_build_sh_without_tensorflow_points_at_setup(tmp_path):
    """No docker and no image to pull: build.sh uses the checkout's .venv or a python3
    that has TensorFlow, and otherwise says how to get one."""
    top = tmp_path / "checkout"
    top.mkdir()
    shutil.copy(BUILD_SH, top / "build.sh")                 # a checkout without .venv
    (top / "ilsvrc").mkdir()
    shutil.copy(os.path.join(REPO, "ilsvrc", "run_module.sh"), top / "ilsvrc")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python3").write_text("#!/bin/sh\nexit 1\n")  # python3 without TF
    os.chmod(fake_bin / "python3", 0o755)
    env = dict(os.environ, PATH="%s:/usr/bin:/bin" % fake_bin)
    r = subprocess.run(["bash", str(top / "build.sh"), str(tmp_path)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "build.sh: no TensorFlow found: run %s/setup.sh first" % top in r.stderr
