"""Focused checks behind the change records of the slim port (patches/
build_imagenet_data.py.patch, preprocess_imagenet_validation_data.py.patch,
process_bounding_boxes.py.patch, download_imagenet.sh.patch,
download_and_convert_imagenet.sh.patch) that the end-to-end tests in test_slim_*.py
do not pin down.
"""

import io
import os
import subprocess
import tarfile

import pytest

from conftest import REPO, python, run_cmd
from ilsvrc import plan, shipped
from ilsvrc.formats import bbox, slim
from ilsvrc.records import features, image
from ilsvrc.sources import tarindex
from ilsvrc.errors import UserError
from ilsvrc.sources.listing import Listing
from ilsvrc.cli import slim as cli_slim
from slim_helpers import convert, records, shard_paths

DATASETS = os.path.join(REPO, "slim", "datasets")
DRIVER = os.path.join(REPO, "slim", "download_and_convert_imagenet.sh")
EXTRACT = os.path.join(DATASETS, "download_imagenet.sh")
BUILD = os.path.join(DATASETS, "build_imagenet_data.py")
HELPERS = [os.path.join(DATASETS, n) for n in ("preprocess_imagenet_validation_data.py",
                                               "process_bounding_boxes.py")]


@pytest.fixture
def tars(slim_release, tmp_path):
    """tmp/imagenet holding (links to) the three archives."""
    d = tmp_path / "imagenet"
    d.mkdir()
    for name in (tarindex.TRAIN_TAR, tarindex.VAL_TAR, bbox.ARCHIVE):
        os.symlink(os.path.join(slim_release[0], name), d / name)
    return d


def _listing(pairs, root="/nowhere"):
    listing = Listing("train")
    listing.root = root
    for group, name in pairs:
        listing.add(name, group)
    return listing


def _items(split):
    return [split.item(j) for j in range(split.count)]


# ------------------------------------------------------------------ P1, P16, DOC-L213..224

def test_slim_text_features_are_utf8_bytes(tmp_path):
    meta = tmp_path / "meta.txt"
    meta.write_bytes("n01440764\ttench, caf\u00e9 fish\nn01443537\tgoldfish\n"
                     .encode("utf-8"))
    texts = slim.load_metadata(str(meta))
    assert texts["n01440764"] == "tench, caf\u00e9 fish"
    listing = _listing([("n01440764", "n01440764_1.JPEG"), ("n01443537", "n01443537_2.JPEG")])
    split = slim.plan_split("train", listing, ["n01440764", "n01443537"], texts, {},
                            "/out", 2, 1, log=io.StringIO())
    seen = set()
    for item in _items(split):
        feats = item.features
        for key, (kind, values) in feats.items():
            if kind == features.BYTES:
                assert all(isinstance(v, bytes) for v in values), key
        synset = feats["image/class/synset"][1][0].decode("ascii")
        assert feats["image/class/text"][1] == [texts[synset].encode("utf-8")]
        seen.add(synset)
    assert seen == {"n01440764", "n01443537"}


# ------------------------------------------------------------------ P2, DAR-binary-read, A3, A8

def _release_bytes(release_dir):
    """{'synset/name' or 'name': bytes} of every image in the two tars."""
    out = {}
    with tarfile.open(os.path.join(release_dir, tarindex.TRAIN_TAR)) as outer:
        for m in outer:
            with tarfile.open(fileobj=outer.extractfile(m)) as inner:
                for im in inner:
                    out["%s/%s" % (m.name[:-4], im.name)] = inner.extractfile(im).read()
    with tarfile.open(os.path.join(release_dir, tarindex.VAL_TAR)) as val:
        for m in val:
            out[m.name] = val.extractfile(m).read()
    return out


def test_slim_records_hold_the_file_bytes_except_the_listed_23(slim_release, tmp_path, tf):
    originals = _release_bytes(slim_release[0])
    out = str(tmp_path / "out")
    convert(out, source_dir=slim_release[0], train_shards=8, val_shards=8, do_verify=False)
    kinds = set()
    for prefix in ("train", "validation"):
        for path in shard_paths(out, prefix, 8):
            for r in records(path):
                name = r["image/filename"][1][0].decode()
                synset = r["image/class/synset"][1][0].decode()
                rel = "%s/%s" % (synset, name) if prefix == "train" else name
                stored = r["image/encoded"][1][0]
                kind = image.special_kind(rel) if prefix == "train" else None
                kinds.add(kind)
                if kind:
                    assert stored == image.reencode(originals[rel], kind), rel
                else:   # plain, grayscale and the CMYK validation image: untouched
                    assert stored == originals[rel], rel
    assert kinds == {None, "png", "cmyk"}


# ------------------------------------------------------------------ A2, P17

def test_slim_plan_independent_of_listing_order():
    # synset-shaped names outside the 1000: a custom class set (ilsvrc.contract)
    synsets = ["n00000002", "n00000000", "n00000001"]
    pairs = [("n0000000%d" % (k % 3), "n0000000%d_%d.JPEG" % (k % 3, k)) for k in range(23)]
    texts = {s: s.upper() for s in synsets}
    plans = [_items(slim.plan_split("train", _listing(p), synsets, texts, {}, "/o", 4, 2,
                                    log=io.StringIO()))
             for p in (pairs, pairs[::-1], sorted(pairs))]
    assert plans[0] == plans[1] == plans[2]
    # upstream's list: labels-file order, names sorted within a synset, seed 12345
    listed = ["%s/%s" % (s, n) for s in synsets
              for n in sorted(n for g, n in pairs if g == s)]
    want = plan.apply_order(listed, plan.seeded_permutation(len(listed), 12345))
    assert [it.relpath for it in plans[0]] == want
    # a class the labels file lacks is refused, not dropped as upstream did
    with pytest.raises(UserError, match="not in the labels file"):
        slim.plan_split("train", _listing(pairs + [("n00000009", "n00000009_1.JPEG")]),
                        synsets, texts, {}, "/o", 4, 2, log=io.StringIO())


# ------------------------------------------------------------------ P4, P11, P12, P14

def test_no_python2_numpy_or_tf1_leftovers_in_the_slim_port(slim_release, tmp_path):
    """The slim conversion, run as build_imagenet_data.py runs it: the main process
    loads no Python 2 shim, no numpy and no TensorFlow (workers decode and write), and
    every worker stays in TF2's eager mode with the TF1 graph entry points refused."""
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import io, sys\n"
        "from ilsvrc import pool\nfrom ilsvrc.formats import slim\n"
        "with pool.Pool(1) as runner:\n"
        "    slim.convert(sys.argv[2], runner, source_dir=sys.argv[1], num_threads=2,\n"
        "                 train_shards=4, val_shards=2, check='decode', log=io.StringIO())\n"
        "print(sorted(m for m in ('six', 'numpy', 'tensorflow', 'google3', 'future')\n"
        "             if m in sys.modules))\n")
    r = run_cmd([python(), "-c", code, slim_release[0], str(out)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert len(os.listdir(out)) == 4 + 2 + 2    # 6 shards, 2 plan states, no lock
    refused = ("import sys\nsys.path.insert(0, sys.argv[3])\n"
               "from ilsvrc.tfimport import tensorflow\ntf = tensorflow()\n"
               "def refuse(*a, **k):\n    raise AssertionError('TF1 graph API used')\n"
               "for n in ('Session', 'InteractiveSession', 'placeholder', "
               "'disable_v2_behavior', 'disable_eager_execution'):\n"
               "    setattr(tf.compat.v1, n, refuse)\n"
               "import io\nfrom ilsvrc import pool\nfrom ilsvrc.formats import slim\n"
               "with pool.Pool(0) as runner:\n"
               "    slim.convert(sys.argv[2], runner, source_dir=sys.argv[1], num_threads=2,"
               " train_shards=4, val_shards=2, check='decode', log=io.StringIO())\n"
               "print(tf.executing_eagerly())\n")
    again = tmp_path / "again"
    again.mkdir()
    r = run_cmd([python(), "-c", refused, slim_release[0], str(again), REPO])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "True"


# ------------------------------------------------------------------ A4, DAR-num-threads

def test_num_threads_defaults_to_8_and_64_is_accepted():
    assert slim.NUM_THREADS == 8
    assert cli_slim._parse_convert(["x"]).num_threads == 8
    assert cli_slim._parse_convert(["x", "--num_threads", "64"]).num_threads == 64
    r = run_cmd([python(), BUILD, "--help"])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    flag = r.stdout[r.stdout.index("--num_threads"):]
    assert "(default: '8')" in flag[:flag.index("\n  --")]
    # 64 gives darchr's boundaries, which differ from 8's
    assert plan.thread_shards(50000, 128, 64) != plan.thread_shards(50000, 128, 8)


# ------------------------------------------------------------------ P5, DOC-L1, DOC-L108

@pytest.mark.parametrize("script", HELPERS + [BUILD], ids=os.path.basename)
def test_helper_scripts_run_directly_with_python3(script):
    with open(script, encoding="utf-8") as f:
        assert f.readline() == "#!/usr/bin/env python3\n"
    assert os.access(script, os.X_OK)
    env = dict(os.environ, PATH=os.path.dirname(python()) + os.pathsep
               + os.environ.get("PATH", ""))
    r = subprocess.run([script, "--help"], capture_output=True, text=True, env=env,
                       cwd="/")
    if script == BUILD:      # absl flags: help lists the flags
        assert r.returncode == 0 and "--output_directory" in r.stdout and \
            "Traceback" not in r.stderr, r.stderr
    else:
        assert r.returncode == 0 and r.stdout.startswith("usage: "), r.stderr


# ------------------------------------------------------------------ A14 (download_imagenet.sh)

def test_download_imagenet_relative_outdir_without_slash_and_closed_stdin(tars, slim_release):
    top = tars.parent
    (top / "syn.txt").write_text("n01440764\nn02105855\n")
    r = run_cmd([EXTRACT, "imagenet/raw-data", "syn.txt", "-j", "0"], cwd=str(top),
                stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "username" not in r.stderr.lower() and "access" not in r.stderr.lower()
    raw = tars / "raw-data"
    assert sorted(os.listdir(raw)) == ["train", "validation"]     # inside, not beside
    assert sorted(os.listdir(top)) == ["imagenet", "syn.txt"]
    assert sorted(os.listdir(tars)) == sorted(
        [tarindex.TRAIN_TAR, tarindex.VAL_TAR, bbox.ARCHIVE, "raw-data"])   # no nXXX.tar
    train = slim_release[1]["train"]
    assert sorted(os.listdir(raw / "train")) == ["n01440764", "n02105855"]
    for synset in ("n01440764", "n02105855"):
        assert sorted(os.listdir(raw / "train" / synset)) == sorted(train[synset])
    labels = shipped.read_lines(shipped.VAL_LABELS_FILE)
    for k in range(1, len(slim_release[1]["val"]) + 1):   # grouped by synset already
        name = "ILSVRC2012_val_%08d.JPEG" % k
        assert (raw / "validation" / labels[k - 1] / name).is_file()


@pytest.mark.parametrize("missing", [[tarindex.VAL_TAR], [tarindex.TRAIN_TAR, tarindex.VAL_TAR]])
def test_download_imagenet_names_the_missing_tars(tars, missing):
    for name in missing:
        os.remove(tars / name)
    r = run_cmd([EXTRACT, str(tars / "raw-data") + "/", "-j", "0"],
                stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    for name in missing:
        assert str(tars / name) in r.stderr
    assert not (tars / "raw-data").exists()


def test_download_imagenet_rerun_replaces_incomplete_files(tars, slim_release):
    raw = tars / "raw-data"
    r = run_cmd([EXTRACT, str(raw), "-j", "0"])
    assert r.returncode == 0, r.stderr
    synset = sorted(slim_release[1]["train"])[0]
    victim = raw / "train" / synset / slim_release[1]["train"][synset][0]
    good = victim.read_bytes()
    victim.write_bytes(good[:10])                   # e.g. cut short by an interruption
    r = run_cmd([EXTRACT, str(raw), "-j", "0"])
    assert r.returncode == 0, r.stderr
    assert victim.read_bytes() == good
    assert not [n for _, _, names in os.walk(raw) for n in names if n.endswith(".partial")]


# ------------------------------------------------------------------ download_and_convert

def test_driver_without_dir_is_a_usage_error_exit_2():
    r = run_cmd([DRIVER], stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "usage" in r.stderr.lower() and r.stdout == ""


def test_driver_runs_through_a_symlink_from_any_directory(tmp_path):
    link = tmp_path / "convert.sh"
    os.symlink(DRIVER, link)
    r = run_cmd([str(link), "--help"], cwd=str(tmp_path))
    assert r.returncode == 0 and "--no-boxes" in r.stdout, r.stderr


def _annotation(name, box):
    return ("<annotation><filename>%s</filename><size><width>100</width><height>100"
            "</height></size><object><name>n01440764</name><bndbox><xmin>%d</xmin>"
            "<ymin>%d</ymin><xmax>%d</xmax><ymax>%d</ymax></bndbox></object></annotation>"
            % ((name,) + box))


def test_box_csv_is_in_code_point_order(tmp_path):
    d = tmp_path / "boxes" / "n01440764"
    d.mkdir(parents=True)
    # en_US sort puts _10026 first (punctuation ignored); C order puts _1002. first
    for stem, box in (("n01440764_10026", (1, 2, 3, 4)), ("n01440764_1002", (5, 6, 7, 8))):
        (d / (stem + ".xml")).write_text(_annotation(stem, box))
    csv = tmp_path / bbox.CSV_NAME
    assert bbox.write_csv(str(tmp_path / "boxes"), str(csv), log=io.StringIO()) == 2
    lines = csv.read_bytes().decode().splitlines()
    assert lines == ["n01440764_1002.JPEG,0.0500,0.0600,0.0700,0.0800",
                     "n01440764_10026.JPEG,0.0100,0.0200,0.0300,0.0400"]
    assert lines == sorted(lines, key=lambda s: s.encode())
