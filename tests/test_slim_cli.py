"""The slim shell drivers and scripts as a user runs them."""

import os
import shutil
import tarfile

import pytest

from conftest import REPO, python, run_cmd
from ilsvrc.formats import bbox
from slim_helpers import expected_csv, parse_with_slim_keys, records, shard_paths

DRIVER = os.path.join(REPO, "slim", "download_and_convert_imagenet.sh")
EXTRACT = os.path.join(REPO, "slim", "datasets", "download_imagenet.sh")
PREPROCESS = os.path.join(REPO, "slim", "datasets", "preprocess_imagenet_validation_data.py")
BUILD = os.path.join(REPO, "slim", "datasets", "build_imagenet_data.py")


@pytest.fixture
def tars(slim_release, tmp_path):
    """A private data directory holding the three archives."""
    d = tmp_path / "imagenet"
    d.mkdir()
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", bbox.ARCHIVE):
        os.symlink(os.path.join(slim_release[0], name), d / name)
    return d


def _shards(d):
    return sorted(n for n in os.listdir(d) if n.startswith(("train-", "validation-")))


def test_driver_relative_dir_other_cwd_and_rerun(tars, slim_release, tf):
    r = run_cmd([DRIVER, "imagenet/", "-j", "2"], cwd=str(tars.parent))
    assert r.returncode == 0, r.stderr
    names = _shards(tars)
    assert len(names) == 1024 + 128
    assert "train-01023-of-01024" in names and "validation-00127-of-00128" in names
    csv = tars / "raw-data" / bbox.CSV_NAME
    assert csv.read_text().splitlines() == expected_csv(slim_release[1])
    assert not (tars / "raw-data" / "train").exists()   # tars read in place
    assert parse_with_slim_keys(tf, [str(tars / n) for n in names
                                     if (tars / n).stat().st_size]) == 10
    before = {n: (tars / n).read_bytes() for n in names}
    r = run_cmd([DRIVER, str(tars), "-j", "0"], cwd="/")
    assert r.returncode == 0, r.stderr
    assert "already complete" in r.stderr
    assert {n: (tars / n).read_bytes() for n in names} == before


def test_driver_missing_box_archive_and_no_boxes(tars):
    os.remove(tars / bbox.ARCHIVE)
    r = run_cmd([DRIVER, str(tars)])
    assert r.returncode != 0 and bbox.ARCHIVE in r.stderr and "--no-boxes" in r.stderr
    assert "Traceback" not in r.stderr and not _shards(tars)
    r = run_cmd([DRIVER, str(tars), "--no-boxes", "-j", "0", "--no-verify"])
    assert r.returncode == 0, r.stderr
    assert not (tars / "raw-data" / bbox.CSV_NAME).exists()
    recs = [x for p in shard_paths(str(tars), "train", 1024) for x in records(p)]
    assert len(recs) == 30
    assert all(x["image/object/bbox/xmin"] == ("float", []) for x in recs)


def test_driver_usage_and_help():
    r = run_cmd([DRIVER])
    assert r.returncode != 0 and "usage" in r.stderr.lower()
    r = run_cmd([DRIVER, "--help"])
    assert r.returncode == 0 and "--no-boxes" in r.stdout and "--extract" in r.stdout
    r = run_cmd([DRIVER, "/nonexistent/dir"])
    assert r.returncode != 0 and "/nonexistent/dir" in r.stderr
    r = run_cmd([DRIVER, "/tmp", "--num-threads", "3"])
    assert r.returncode == 2 and "--num_threads" in r.stderr


def test_driver_missing_tar(tars):
    os.remove(tars / "ILSVRC2012_img_val.tar")
    r = run_cmd([DRIVER, str(tars)])
    assert r.returncode == 1 and "ILSVRC2012_img_val.tar" in r.stderr


def test_download_imagenet_extracts_and_reruns(tars, slim_release):
    out = tars / "raw-data"
    for _ in range(2):
        r = run_cmd([EXTRACT, str(out) + "/", "-j", "0"])
        assert r.returncode == 0, r.stderr
        assert "note: 994 synsets of" in r.stderr  # the sample has 6 of the 1000
    train = slim_release[1]["train"]
    for synset, names in train.items():
        assert sorted(os.listdir(out / "train" / synset)) == names
    assert sum(len(os.listdir(out / "validation" / s))
               for s in os.listdir(out / "validation")) == 12


def test_download_imagenet_refuses_stray_images(tars, slim_release):
    """Upstream's `rm -rf` meant to empty each class directory did nothing, so stale
    images of an earlier extraction were converted too; here they stop the run."""
    out = tars / "raw-data"
    assert run_cmd([EXTRACT, str(out), "-j", "0"]).returncode == 0
    synset = sorted(slim_release[1]["train"])[0]
    (out / "train" / synset / (synset + "_stale.JPEG")).write_bytes(b"old")
    r = run_cmd([EXTRACT, str(out), "-j", "0"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert str(out / "train" / synset) in last and synset + "_stale.JPEG" in last
    assert "Remove them and rerun" in last


def _flat_validation(slim_release, d):
    with tarfile.open(os.path.join(slim_release[0], "ILSVRC2012_img_val.tar")) as tar:
        tar.extractall(d, filter="data")
    return os.path.join(slim_release[0], "synset_labels.txt")


def test_preprocess_moves_and_is_rerunnable(slim_release, tmp_path):
    val = tmp_path / "validation"
    labels = _flat_validation(slim_release, val)
    synsets = slim_release[1]["val"]
    # an interrupted run: two images already moved
    for k in (1, 2):
        name = "ILSVRC2012_val_%08d.JPEG" % k
        (val / synsets[k - 1]).mkdir(exist_ok=True)
        os.replace(val / name, val / synsets[k - 1] / name)
    for _ in range(2):
        r = run_cmd([python(), PREPROCESS, str(val), labels])
        assert r.returncode == 0, r.stderr
    for k, synset in enumerate(synsets, 1):
        assert (val / synset / ("ILSVRC2012_val_%08d.JPEG" % k)).is_file()
    assert not [n for n in os.listdir(val) if n.endswith(".JPEG")]


def test_preprocess_partial_set_missing_set_and_usage(slim_release, tmp_path):
    val = tmp_path / "validation"
    labels = _flat_validation(slim_release, val)
    os.remove(val / "ILSVRC2012_val_00000005.JPEG")
    # a partial validation set: what is there is sorted, what is not is said
    r = run_cmd([python(), PREPROCESS, str(val), labels])
    assert r.returncode == 0, r.stderr
    assert "moved 11 images" in r.stderr and "ILSVRC2012_val_00000005.JPEG" in r.stderr
    synset = slim_release[1]["val"][0]
    assert os.path.exists(val / synset / "ILSVRC2012_val_00000001.JPEG")
    # nothing extracted at all: upstream's status and the fix that applies
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cmd([python(), PREPROCESS, str(empty), labels])
    assert r.returncode == 255 and "Extract ILSVRC2012_img_val.tar" in r.stderr
    r = run_cmd([python(), PREPROCESS, str(val)])
    assert r.returncode == 255 and "usage" in r.stderr


@pytest.mark.parametrize("flags, words", [
    (["--num_threads=3"], "--num_threads"),
    (["--train_shards=100", "--num_threads=8"], "--train_shards"),
    (["--source_dir=/x", "--train_directory=/y"], "--source_dir"),
    (["--validation_labels_file=/x"], "--source_dir"),
    (["--bounding_box_file=/no/such.csv"], "--bounding_box_file=''"),
])
def test_build_flag_errors(flags, words):
    r = run_cmd([python(), BUILD] + flags)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


def test_build_script_from_tree_matches_driver_defaults(slim_release, tmp_path):
    """Upstream's flow: extract, preprocess, build_imagenet_data.py on the tree."""
    raw = tmp_path / "raw-data"
    r = run_cmd([EXTRACT, str(raw), "--tars", slim_release[0], "-j", "0"])
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    out.mkdir()
    csv = tmp_path / bbox.CSV_NAME
    r = run_cmd([python(), os.path.join(REPO, "slim", "datasets", "process_bounding_boxes.py"),
                 os.path.join(slim_release[0], bbox.ARCHIVE),
                 os.path.join(REPO, "slim", "datasets", "imagenet_lsvrc_2015_synsets.txt")])
    csv.write_text("".join(sorted(line + "\n" for line in r.stdout.splitlines())))
    r = run_cmd([python(), BUILD, "--train_directory=%s/train" % raw,
                 "--validation_directory=%s/validation" % raw, "--output_directory=%s" % out,
                 "--bounding_box_file=%s" % csv, "--train_shards=16",
                 "--validation_shards=8", "--num_threads=8", "--num_workers=0"],
                cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    recs = [x for p in shard_paths(str(out), "train", 16) for x in records(p)]
    assert len(recs) == 30 and sum(bool(x["image/object/bbox/xmin"][1]) for x in recs) == 8
    shutil.rmtree(out)
    out.mkdir()
    r = run_cmd([python(), BUILD, "--source_dir=%s" % slim_release[0],
                 "--output_directory=%s" % out, "--bounding_box_file=%s" % csv,
                 "--train_shards=16", "--validation_shards=8", "--num_workers=0"],
                cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert [x for p in shard_paths(str(out), "train", 16) for x in records(p)] == recs
