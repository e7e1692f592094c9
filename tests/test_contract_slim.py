"""Bad-input corpus, slim front ends (`slim/download_and_convert_imagenet.sh`,
`slim/datasets/build_imagenet_data.py`, `preprocess_imagenet_validation_data.py`,
`process_bounding_boxes.py`): exit status, the one-line message, and the records."""

import gzip
import io
import os
import random
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, run_cmd
from contract_helpers import (SLIM, TRAIN_TAR, VAL_TAR, members_of, official_label,
                              one_line_error, read_records, rewrite_tar, shard_files,
                              tar_bytes, write_lines)
from ilsvrc.formats import bbox
from ilsvrc import shipped as data
from ilsvrc.testing import sample
from ilsvrc.errors import UserError

SCRIPTS = os.path.join(REPO, "slim", "datasets")
BUILD, PREPROCESS, BOXES = (os.path.join(SCRIPTS, name) for name in (
    "build_imagenet_data.py", "preprocess_imagenet_validation_data.py",
    "process_bounding_boxes.py"))


@pytest.fixture
def release(slim_release, tmp_path):
    """A private copy of the sample with boxes: (dir, manifest)."""
    src = tmp_path / "release"
    shutil.copytree(slim_release[0], src)
    return str(src), slim_release[1]


def build(src, out, *flags):
    """build_imagenet_data.py on the sample's tars (validation labels: the sample's
    own synset_labels.txt unless a flag names another file)."""
    os.makedirs(out, exist_ok=True)
    if not any(f.startswith("--validation_labels_file=") for f in flags):
        flags += ("--validation_labels_file=" + os.path.join(src, "synset_labels.txt"),)
    return run_cmd([sys.executable, BUILD, "--source_dir=" + src, "--output_directory=" + out,
                    "--bounding_box_file=", "--num_workers=0"] + list(flags))


def _labels(src, lines, prefix=b""):
    path = os.path.join(src, "val_labels.txt")
    write_lines(path, prefix + "".join(l + "\n" for l in lines).encode())
    return path


def test_validation_labels_with_a_bom_keep_every_image(release, tmp_path, tf):
    """upstream slim: the BOM made line 1 an unknown 'synset'; its images vanished."""
    src, manifest = release
    labels = _labels(src, manifest["val"], b"\xef\xbb\xbf")
    out = str(tmp_path / "out")
    r = build(src, out, "--validation_labels_file=" + labels)
    assert r.returncode == 0, r.stderr
    got = read_records(shard_files(out), tf)
    val = sorted((n, l, s) for n, l, s in got if n.startswith("ILSVRC2012_val_"))
    assert [n for n, _, _ in val] == ["ILSVRC2012_val_%08d.JPEG" % (k + 1)
                                      for k in range(len(manifest["val"]))]
    for name, label, synset in val:
        assert synset == manifest["val"][int(name[15:23]) - 1]
        assert label == official_label(synset)
    assert len(got) == len(val) + sum(map(len, manifest["train"].values()))


@pytest.mark.parametrize("edit,words", [
    ("unknown", ["line 2: n99999999 is not one of the 1000", "--allow_custom_classes"]),
    ("blank-at-end", ["line 13 is blank"]),
    ("space", ["line 1 is", "not a synset"]),
])
def test_bad_validation_labels_file_is_refused(release, tmp_path, edit, words):
    """upstream slim dropped the images of an unknown synset and exited 0."""
    src, manifest = release
    lines = list(manifest["val"])
    if edit == "unknown":
        lines[1] = "n99999999"
    elif edit == "blank-at-end":
        lines.append("")
    elif edit == "space":
        lines[0] = " " + lines[0]
    out = str(tmp_path / "out")
    one_line_error(build(src, out, "--validation_labels_file=" + _labels(src, lines)),
                   "build_imagenet_data.py", "val_labels.txt", *words)
    assert not shard_files(out)


def test_readme_tar_is_refused_not_dropped(release, tmp_path):
    src, _ = release
    image = sample.make_image(random.Random(2), "rgb", 16, 16)
    rewrite_tar(os.path.join(src, TRAIN_TAR),
                lambda m: m + [("README.tar", tar_bytes([("README.JPEG", image)]))])
    out = str(tmp_path / "out")
    one_line_error(build(src, out), "build_imagenet_data.py", "README.tar", "not a class")
    assert not shard_files(out)


def test_labels_file_must_be_the_1000_unless_custom(release, tmp_path, tf):
    """Labels are line numbers of --labels_file: a subset shifts them off ILSVRC2012."""
    src, manifest = release
    synsets = sorted(set(manifest["train"]) | set(manifest["val"]))
    subset = tmp_path / "subset.txt"
    subset.write_text("".join(s + "\n" for s in synsets))
    out = str(tmp_path / "out")
    one_line_error(build(src, out, "--labels_file=%s" % subset), "build_imagenet_data.py",
                   "subset.txt", "not the 1000", "--allow_custom_classes")
    assert not shard_files(out)
    r = build(src, out, "--labels_file=%s" % subset, "--allow_custom_classes")
    assert r.returncode == 0, r.stderr
    assert "custom class set: %d classes, labels 1..%d" % (len(synsets), len(synsets)) \
        in r.stderr
    for name, label, synset in read_records(shard_files(out), tf):
        assert label == synsets.index(synset) + 1, name


def test_class_missing_from_labels_file_is_refused_not_dropped(release, tmp_path):
    src, manifest = release
    synsets = sorted(set(manifest["train"]) | set(manifest["val"]))
    dropped = sorted(manifest["train"])[1]
    short = tmp_path / "short.txt"
    short.write_text("".join(s + "\n" for s in synsets if s != dropped))
    out = str(tmp_path / "out")
    r = build(src, out, "--labels_file=%s" % short, "--allow_custom_classes")
    one_line_error(r, "build_imagenet_data.py", dropped, "not in the labels file",
                   "left out")
    assert not shard_files(out)


def test_bucket_output_directory_goes_to_the_bucket_never_to_a_local_gs_dir(release,
                                                                            tmp_path):
    """--output_directory=gs://... is a bucket (ilsvrc/storage/), never a local 'gs:'
    directory: with no credentials it stops in one line naming the bucket.  Metadata
    look-ups go to a closed port on 127.0.0.1, never off the machine."""
    src, _ = release
    env = dict(os.environ, PYTHONPATH=REPO,
               GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "none.json"),
               GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9")
    env.pop("STORAGE_EMULATOR_HOST", None)
    r = subprocess.run([sys.executable, BUILD, "--source_dir=" + src,
                        "--output_directory=gs://bucket/slim", "--bounding_box_file="],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True)
    one_line_error(r, "build_imagenet_data.py", "gs://bucket", "credentials")
    assert not os.path.exists(tmp_path / "gs:")


def test_tree_with_a_non_synset_directory_is_refused(release, tmp_path):
    src, manifest = release
    train, val = tmp_path / "train", tmp_path / "validation"
    for name, inner in members_of(os.path.join(src, TRAIN_TAR)):
        (train / name[:-4]).mkdir(parents=True)
        for img, payload in members_of(inner):
            (train / name[:-4] / img).write_bytes(payload)
    (train / ".ipynb_checkpoints").mkdir()
    shutil.copytree(train, val)
    out = tmp_path / "out"
    out.mkdir()
    r = run_cmd([sys.executable, BUILD, "--train_directory=%s" % train,
                 "--validation_directory=%s" % val, "--output_directory=%s" % out,
                 "--bounding_box_file=", "--num_workers=0"])
    one_line_error(r, "build_imagenet_data.py", ".ipynb_checkpoints", "not a class")
    assert not shard_files(str(out))


def test_preprocess_refuses_a_label_file_with_a_blank_line(release, tmp_path):
    src, manifest = release
    val = tmp_path / "val"
    val.mkdir()
    for name, payload in members_of(os.path.join(src, VAL_TAR)):
        (val / name).write_bytes(payload)
    labels = _labels(src, list(manifest["val"][:3]) + [""] + list(manifest["val"][3:]))
    r = run_cmd([sys.executable, PREPROCESS, str(val), labels])
    one_line_error(r, "preprocess_imagenet_validation_data.py", "line 4 is blank")
    assert sorted(os.listdir(val)) == ["ILSVRC2012_val_%08d.JPEG" % (k + 1)
                                       for k in range(len(manifest["val"]))]


# --------------------------------------------------------------------------- boxes

def _cut_points(size):
    """Some cut points of every kind: headers, member data, end marker, gzip trailer."""
    rng = random.Random(7)
    return sorted({1, 10, size // 3, size // 2, size - 9, size - 4, size - 1}
                  | {rng.randrange(1, size) for _ in range(20)})


def test_every_cut_of_the_box_archive_is_an_error(release, tmp_path):
    """upstream's streaming reader stopped quietly: about a third of cut points lost
    boxes with exit 0.  Here the gzip trailer and the tar end marker are required."""
    src, _ = release
    full = open(os.path.join(src, bbox.ARCHIVE), "rb").read()
    cut = tmp_path / bbox.ARCHIVE
    for n in range(1, len(full)):      # every cut point, read in this process
        cut.write_bytes(full[:n])
        with pytest.raises(UserError, match=bbox.ARCHIVE):
            list(bbox.csv_lines(str(cut), None, log=io.StringIO()))


@pytest.mark.parametrize("which", ["middle", "trailer"])
def test_driver_stops_on_a_cut_box_archive(release, which):
    src, _ = release
    path = os.path.join(src, bbox.ARCHIVE)
    full = open(path, "rb").read()
    write_lines(path, full[:len(full) // 2] if which == "middle" else full[:-4])
    r = run_cmd([SLIM, src, "-j", "0"])
    one_line_error(r, "download_and_convert_imagenet.sh", bbox.ARCHIVE)
    assert not shard_files(src)
    assert not os.path.exists(os.path.join(src, "raw-data", bbox.CSV_NAME))


def test_recompressed_box_archive_without_end_marker_is_an_error(release):
    """A complete gzip stream around a tar that stops early: the end marker is missing."""
    src, _ = release
    path = os.path.join(src, bbox.ARCHIVE)
    tar = gzip.decompress(open(path, "rb").read())
    body = tar.rstrip(b"\0")
    body += b"\0" * (-len(body) % 512)
    write_lines(path, gzip.compress(body, mtime=0))
    r = run_cmd([sys.executable, BOXES, path])
    one_line_error(r, "process_bounding_boxes.py", bbox.ARCHIVE, "end-of-archive marker")


def test_process_bounding_boxes_refuses_a_bad_synsets_file(release, tmp_path):
    src, _ = release
    synsets = tmp_path / "synsets.txt"
    synsets.write_bytes(open(data.SYNSETS_FILE, "rb").read() + b"\n")
    r = run_cmd([sys.executable, BOXES, os.path.join(src, bbox.ARCHIVE), str(synsets)])
    one_line_error(r, "process_bounding_boxes.py", "synsets.txt", "line 1001 is blank")
