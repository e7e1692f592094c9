"""Bad-input corpus, official front ends (`./build.sh`, `official/imagenet_to_gcs.py`).

Each case is generated from the sample release with one careless or hostile edit and
asserts the exit status, the one-line message naming the input, and the records:
none written for a refused input, and for an accepted one every record read back by
tf.data with the label its synset has among the sorted synsets.
"""

import os
import random
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, run_cmd
from contract_helpers import (TRAIN_TAR, VAL_TAR, build, edit_inner, members_of,
                              one_line_error, read_records, rewrite_tar, shard_files,
                              tar_bytes, write_lines)
from ilsvrc.testing import sample

PROG = "build.sh"


@pytest.fixture
def release(release_copy):
    src, manifest = release_copy
    return src, manifest, os.path.join(os.path.dirname(src), "out")


def refused(result, out, *words):
    """The run stopped with one line naming the input, and wrote no shard."""
    last = one_line_error(result, PROG, *words)
    assert not shard_files(out), shard_files(out)
    return last


def labels_file(src):
    return os.path.join(src, "synset_labels.txt")


def _val_lines(manifest):
    return "".join(s + "\n" for s in manifest["val"])


def assert_records_right(out, manifest, tf, custom_extra=()):
    """Every image once; label = 1 + position of its synset among the sorted synsets
    of both splits (upstream's rule), synset = the one the manifest gives it."""
    got = read_records(shard_files(out), tf)
    synsets = sorted(set(manifest["train"]) | set(manifest["val"]) | set(custom_extra))
    want = {}
    for s, names in manifest["train"].items():
        for n in names:
            want[n] = s
    for k, s in enumerate(manifest["val"]):
        want["ILSVRC2012_val_%08d.JPEG" % (k + 1)] = s
    assert sorted(n for n, _, _ in got) == sorted(want)
    for name, label, synset in got:
        assert synset == want[name], name
        assert label == synsets.index(synset) + 1, name


# --------------------------------------------------------------------------- label file

@pytest.mark.parametrize("edit,words", [
    ("blank-at-end", ["synset_labels.txt line 13 is blank"]),
    ("blank-inside", ["synset_labels.txt line 4 is blank"]),
    ("trailing-space", ["synset_labels.txt line 1 is", "not a synset"]),
    ("lost-digit", ["synset_labels.txt line 2 is", "not a synset"]),
    ("tab-text", ["line 1 is", "not a synset"]),
    ("not-utf8", ["not UTF-8"]),
    ("empty", ["is empty"]),
    ("unknown-synset", ["line 3: n99999999 is not one of the 1000", "--allow-custom-classes"]),
])
def test_bad_label_file_is_refused(release, edit, words):
    src, manifest, out = release
    lines = list(manifest["val"])
    text = None
    if edit == "blank-at-end":          # one extra blank line: upstream shifts every label
        text = _val_lines(manifest) + "\n"
    elif edit == "blank-inside":
        lines.insert(3, "")
    elif edit == "trailing-space":
        lines[0] += " "
    elif edit == "lost-digit":
        lines[1] = lines[1][:-1]
    elif edit == "tab-text":
        lines[0] += "\tgoldfish"
    elif edit == "not-utf8":
        text = b"\xff\xfe" + _val_lines(manifest).encode("utf-16-le")
    elif edit == "empty":
        text = ""
    elif edit == "unknown-synset":
        lines[2] = "n99999999"
    write_lines(labels_file(src), text if text is not None else "".join(l + "\n" for l in lines))
    refused(build(src, out), out, *words)


def test_kaggle_csv_as_label_file_is_refused_with_a_hint(release, tmp_path):
    src, manifest, out = release
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("ImageId,PredictionString\n" + "".join(
        "ILSVRC2012_val_%08d,%s 1 2 3 4\n" % (k + 1, s) for k, s in enumerate(manifest["val"])))
    last = refused(build(src, out, "--labels", str(csv)), out, "LOC_val_solution.csv",
                   "CSV", "not a label file")
    assert "one synset per line" in last


def test_bom_and_crlf_are_accepted_and_labels_right(release, tf):
    """A BOM and Windows line ends are stripped, not turned into new 'synsets'."""
    src, manifest, out = release
    write_lines(labels_file(src), b"\xef\xbb\xbf" + _val_lines(manifest).replace(
        "\n", "\r\n").encode())
    r = build(src, out)
    assert r.returncode == 0, r.stderr
    assert_records_right(out, manifest, tf)


def test_custom_class_set_needs_the_option_and_prints_its_range(release, tf):
    src, manifest, out = release
    lines = list(manifest["val"])
    lines[0] = "n99999999"
    write_lines(labels_file(src), "".join(l + "\n" for l in lines))
    refused(build(src, out), out, "n99999999", "--allow-custom-classes")
    r = build(src, out, "--allow-custom-classes")
    assert r.returncode == 0, r.stderr
    n = len(set(manifest["train"]) | set(lines))
    assert "custom class set: %d classes, labels 1..%d" % (n, n) in r.stderr
    manifest = dict(manifest, val=lines)
    assert_records_right(out, manifest, tf)


# --------------------------------------------------------------------------- class names

@pytest.mark.parametrize("inner", ["README.tar", "n0144076.tar", "N01440764.tar",
                                   "n99999999.tar"])
def test_non_class_inner_tar_is_refused(release, inner):
    """upstream: README.tar becomes label 1 and every real class shifts by one."""
    src, manifest, out = release
    image = sample.make_image(random.Random(2), "rgb", 16, 16)
    payload = tar_bytes([(inner[:-4] + "_1.JPEG", image)])
    rewrite_tar(os.path.join(src, TRAIN_TAR), lambda m: [(inner, payload)] + m)
    words = [TRAIN_TAR, inner]
    words += ["1000 ILSVRC2012 synsets"] if inner == "n99999999.tar" else ["is not a class"]
    refused(build(src, out), out, *words)


def test_other_member_of_the_training_tar_is_refused(release):
    src, _, out = release
    rewrite_tar(os.path.join(src, TRAIN_TAR), lambda m: m + [("README.txt", b"hello\n")])
    refused(build(src, out), out, TRAIN_TAR, "README.txt", "not part of the release")


# --------------------------------------------------------------------------- members

def test_image_in_a_sub_folder_of_an_inner_tar_is_refused(release):
    src, manifest, out = release
    synset = sorted(manifest["train"])[0]
    edit_inner(src, synset, lambda m: [(synset + "/" + n, p) for n, p in m[:1]] + m[1:])
    refused(build(src, out), out, synset + ".tar", "sub-folder")


@pytest.mark.parametrize("name", ["ILSVRC2012_val_00000013.jpg", "notes.txt"])
def test_unexpected_validation_member_is_refused(release, name):
    src, _, out = release
    rewrite_tar(os.path.join(src, VAL_TAR), lambda m: m + [(name, m[0][1])])
    refused(build(src, out), out, VAL_TAR, name, "only *.JPEG images")


def test_repacked_validation_tar_names_the_file_and_what_it_found(release):
    """`tar cf ILSVRC2012_img_val.tar val/`: upstream finds no images, says nothing."""
    src, _, out = release
    rewrite_tar(os.path.join(src, VAL_TAR),
                lambda m: [("val/", b"")] + [("val/" + n, p) for n, p in m])
    last = refused(build(src, out), out, VAL_TAR, "val/ILSVRC2012_val_", "sub-folder",
                   "re-packed")
    assert "top level" in last


def test_mixed_validation_numbering_is_refused(release):
    """One ILSVRC2012_val_1.JPEG among padded names switched all to positional labels."""
    src, _, out = release
    rewrite_tar(os.path.join(src, VAL_TAR),
                lambda m: m + [("ILSVRC2012_val_1.JPEG", m[0][1])])
    refused(build(src, out), out, VAL_TAR, "ILSVRC2012_val_1.JPEG", "never a mix")


def _sparse_tar(tmp_path, names_payloads, fmt):
    """A tar written by GNU tar -S (holes stored sparse), as bytes."""
    d = tmp_path / ("sparse-" + fmt)
    d.mkdir()
    for name, payload, hole in names_payloads:
        with open(d / name, "wb") as f:
            f.write(payload)
            if hole:
                f.seek(1 << 20, 1)
                f.write(b"\x01")
    tar = tmp_path / ("sparse-%s.tar" % fmt)
    subprocess.run(["tar", "-c", "-S", "--hole-detection=raw", "--format=" + fmt,
                    "-f", str(tar), "-C", str(d)] + [n for n, _, _ in names_payloads],
                   check=True)
    return tar.read_bytes()


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_sparse_members_are_refused_not_skipped(release, tmp_path, fmt):
    src, manifest, out = release
    synset = sorted(manifest["train"])[0]
    inner = members_of(os.path.join(src, TRAIN_TAR))
    payloads = dict(inner)
    images = members_of(payloads[synset + ".tar"])
    sparse = _sparse_tar(tmp_path, [(n, p, k == 0) for k, (n, p) in enumerate(images)],
                         fmt)
    with open(os.path.join(src, TRAIN_TAR), "wb") as f:
        f.write(tar_bytes([(n, sparse if n == synset + ".tar" else p) for n, p in inner]))
    refused(build(src, out), out, synset + ".tar", images[0][0], "sparse", "-S")


# --------------------------------------------------------------------------- trees

def _tree(src, manifest, tmp_path):
    tree = tmp_path / "tree"
    for name, inner in members_of(os.path.join(src, TRAIN_TAR)):
        d = tree / "train" / name[:-4]
        d.mkdir(parents=True)
        for img, payload in members_of(inner):
            (d / img).write_bytes(payload)
    (tree / "validation").mkdir()
    for name, payload in members_of(os.path.join(src, VAL_TAR)):
        (tree / "validation" / name).write_bytes(payload)
    shutil.copy(labels_file(src), tree / "synset_labels.txt")
    return tree


@pytest.mark.parametrize("edit,words", [
    ("readme-dir", ["train/README/", "is not a class"]),
    ("sorted-validation", ["validation/n01440764/", "sub-folder"]),
    ("jpg-in-class", [".jpg", "not named *.JPEG"]),
    ("image-outside-class", ["train/stray.JPEG", "outside any class"]),
    ("nested-class", ["sub-folder"]),
])
def test_tree_layout_problems_are_refused(release, tmp_path, edit, words):
    src, manifest, out = release
    tree = _tree(src, manifest, tmp_path)
    some = next((tree / "validation").iterdir())
    synset = sorted(manifest["train"])[0]
    if edit == "readme-dir":
        (tree / "train" / "README").mkdir()
        (tree / "train" / "README" / "x.JPEG").write_bytes(some.read_bytes())
    elif edit == "sorted-validation":
        (tree / "validation" / "n01440764").mkdir()
        some.rename(tree / "validation" / "n01440764" / some.name)
    elif edit == "jpg-in-class":
        (tree / "train" / synset / "extra.jpg").write_bytes(some.read_bytes())
    elif edit == "image-outside-class":
        (tree / "train" / "stray.JPEG").write_bytes(some.read_bytes())
    elif edit == "nested-class":
        (tree / "train" / synset / "more").mkdir()
        (tree / "train" / synset / "more" / "x.JPEG").write_bytes(some.read_bytes())
    refused(build(str(tree), out), out, *words)


# --------------------------------------------------------------------------- images

def _scan_bounds(data):
    sos = data.find(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    return start, data.rfind(b"\xff\xd9")


def _corrupt_entropy(data):
    """A bit flip inside the entropy-coded data that libjpeg reports as corrupt."""
    start, _ = _scan_bounds(data)
    out = bytearray(data)
    out[start + 5] ^= 0xFF
    return bytes(out)


def _cut_scan(data):
    start, end = _scan_bounds(data)
    return data[:start + (end - start) // 2] + b"\xff\xd9"


@pytest.mark.parametrize("damage,reason", [(_corrupt_entropy, "Corrupt JPEG data"),
                                           (_cut_scan, "premature end of data segment")])
def test_decode_check_fails_on_libjpeg_corrupt_data_warnings(release, damage, reason, tf):
    """TF returns pixels for these (libjpeg only warns); --check decode must fail."""
    src, manifest, out = release
    synset = sorted(manifest["train"])[0]
    name = manifest["train"][synset][1]
    edit_inner(src, synset, lambda m: [(n, damage(p) if n == name else p) for n, p in m])
    one_line_error(build(src, out, "--check", "decode"), PROG, synset + ".tar/" + name,
                   "cannot be decoded", reason)
    assert_not_stored(out, name, tf)
    # the header check does not decode the entropy-coded data: it takes the image
    # (README / docs/input-contract.md say so)
    r = build(src, out + "-header", "--check", "header", "--no-verify")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("check", ["header", "decode"])
def test_twelve_bit_jpeg_is_refused_by_both_checks(release, check, tf):
    src, manifest, out = release
    synset = sorted(manifest["train"])[0]
    name = manifest["train"][synset][1]

    def twelve_bit(data):
        i = data.find(b"\xff\xc0")
        return data[:i + 4] + b"\x0c" + data[i + 5:]
    edit_inner(src, synset, lambda m: [(n, twelve_bit(p) if n == name else p) for n, p in m])
    one_line_error(build(src, out, "--check", check), PROG, synset + ".tar/" + name,
                   "precision 12")
    assert_not_stored(out, name, tf)


def assert_not_stored(out, name, tf):
    """Shards finished before an image error are kept (complete); none holds it."""
    assert name not in [n for n, _, _ in read_records(shard_files(out), tf)]


# --------------------------------------------------------------------------- outputs

def test_bucket_output_goes_to_the_bucket_never_to_a_local_gs_dir(release, tmp_path):
    """-o gs://... is a bucket (ilsvrc/storage/), never a local 'gs:' directory: with
    no credentials it stops in one line naming the bucket, before any work."""
    src, _, _ = release
    env = dict(os.environ, PYTHONPATH=REPO,
               GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "none.json"),
               GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9")
    env.pop("STORAGE_EMULATOR_HOST", None)
    r = subprocess.run([os.path.join(REPO, "build.sh"), src, "-o", "gs://bucket/x",
                        "-j", "0"], cwd=str(tmp_path), env=env, capture_output=True,
                       text=True)
    last = one_line_error(r, PROG, "gs://bucket", "credentials")
    assert r.stderr.strip() == last
    assert not os.path.exists(tmp_path / "gs:")


def test_bucket_scratch_dir_is_refused_by_imagenet_to_gcs(release, tmp_path):
    src, _, _ = release
    r = run_cmd([sys.executable, os.path.join(REPO, "official", "imagenet_to_gcs.py"),
                 "--raw_data_dir=" + src, "--local_scratch_dir=gs://b/x", "--nogcs_upload"],
                cwd=str(tmp_path))
    one_line_error(r, "imagenet_to_gcs.py", "--local_scratch_dir", "gs://b/x")
    assert not os.path.exists(tmp_path / "gs:")


def test_imagenet_to_gcs_refuses_unknown_synsets_without_its_flag(release):
    src, manifest, out = release
    lines = list(manifest["val"])
    lines[0] = "n99999999"
    write_lines(labels_file(src), "".join(l + "\n" for l in lines))
    r = run_cmd([sys.executable, os.path.join(REPO, "official", "imagenet_to_gcs.py"),
                 "--raw_data_dir=" + src, "--local_scratch_dir=" + out, "--nogcs_upload",
                 "--num_workers=0"])
    one_line_error(r, "imagenet_to_gcs.py", "n99999999", "--allow_custom_classes")
    assert not shard_files(out)


def test_extract_into_an_unwritable_target_is_one_line(release):
    src, _, out = release
    with open(os.path.join(src, "train"), "w") as f:    # DIR/train is a file
        f.write("in the way\n")
    r = build(src, out, "--extract", "--source", "tar")
    one_line_error(r, PROG, os.path.join(src, "train"), "--extract")
    assert not shard_files(out)


_PROBE = r"""
import os, sys
import tensorflow as tf
data = open(sys.argv[1], "rb").read()
i = data.find(b"\xff\xc0")
for marker in [int(m, 16) for m in sys.argv[2:]]:
    patched = data[:i + 1] + bytes([marker]) + data[i + 2:]
    try:
        tf.io.decode_jpeg(patched, channels=3)
    except Exception:
        pass
    sys.stderr.write("\n#%02x\n" % marker)
    sys.stderr.flush()
"""


def test_header_check_accepts_exactly_the_frame_types_tensorflow_decodes(tmp_path):
    """For every frame type, TensorFlow's libjpeg (its stderr, in a separate process)
    says 'Unsupported JPEG process' exactly when the header check refuses it."""
    from ilsvrc.records import jpeg
    image = sample.make_image(random.Random(4), "rgb", 24, 16)
    path = tmp_path / "base.jpg"
    path.write_bytes(image)
    markers = [m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)]
    r = subprocess.run([sys.executable, "-c", _PROBE, str(path)] + ["%x" % m for m in markers],
                       capture_output=True, text=True, env=dict(os.environ,
                                                                TF_CPP_MIN_LOG_LEVEL="0"))
    assert r.returncode == 0, r.stderr
    said = {}                   # marker -> what libjpeg printed while decoding it
    for line in r.stderr.splitlines():
        if line.startswith("#"):
            said[int(line[1:], 16)] = said.pop(-1, "")
            continue
        said[-1] = said.get(-1, "") + line
    i = image.find(b"\xff\xc0")
    for m in markers:
        patched = image[:i + 1] + bytes([m]) + image[i + 2:]
        try:
            jpeg.header_info(patched)
            accepted = True
        except jpeg.BadImage:
            accepted = False
        assert accepted == ("Unsupported JPEG process" not in said[m]), (hex(m), said[m])
