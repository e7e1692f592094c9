"""The slim format end to end on a generated release with boxes."""

import hashlib
import json
import os
import random
import struct

import pytest

from ilsvrc import plan, pool, shipped
from ilsvrc.formats import bbox, slim
from ilsvrc.cli import slim as cli_slim
from ilsvrc.errors import UsageError, UserError
from slim_helpers import (convert, expected_csv, parse_with_slim_keys, records,
                          shard_paths)

SYNSETS = shipped.read_lines(shipped.SYNSETS_FILE)
TEXTS = dict(line.split("\t") for line in shipped.read_lines(shipped.METADATA_FILE))
BOX_KEYS = ["image/object/bbox/" + k for k in ("xmin", "ymin", "xmax", "ymax")]


@pytest.fixture(scope="module")
def csv_file(slim_release, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("csv") / bbox.CSV_NAME)
    bbox.write_csv(os.path.join(slim_release[0], bbox.ARCHIVE), path, set(SYNSETS),
                   log=open(os.devnull, "w"))
    return path


@pytest.fixture(scope="module")
def from_tars(slim_release, csv_file, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("slim_tars"))
    convert(out, source_dir=slim_release[0], bbox_file=csv_file)
    return out


def _all(out, prefix, n):
    return [records(p) for p in shard_paths(out, prefix, n)]


def _expected_order(names_by_synset):
    """Upstream's list, computed here: labels-file order, names sorted, seed 12345."""
    items = [(s, n) for s in SYNSETS for n in sorted(names_by_synset.get(s, ()))]
    idx = list(range(len(items)))
    random.seed(12345)
    random.shuffle(idx)
    return [items[i] for i in idx]


def _val_by_synset(manifest):
    """The sample's validation images by synset: its DIR/synset_labels.txt labels
    them (the rule both formats follow)."""
    out = {}
    for k in range(1, len(manifest["val"]) + 1):
        out.setdefault(manifest["val"][k - 1], []).append("ILSVRC2012_val_%08d.JPEG" % k)
    return out


def test_shard_files_names_and_layout(from_tars, slim_release):
    names = os.listdir(from_tars)
    assert len([n for n in names if n.startswith("train-")]) == 1024
    assert len([n for n in names if n.startswith("validation-")]) == 128
    assert not [n for n in names if n.endswith(".partial")]
    for prefix, n, count in (("train", 1024, 30), ("validation", 128, 12)):
        sizes = [len(r) for r in _all(from_tars, prefix, n)]
        assert sizes == [e - s for s, e in plan.thread_shards(count, n, 8)]


@pytest.mark.parametrize("prefix, shards", [("train", 1024), ("validation", 128)])
def test_order_labels_text_and_keys(from_tars, slim_release, prefix, shards):
    manifest = slim_release[1]
    by_synset = manifest["train"] if prefix == "train" else _val_by_synset(manifest)
    expected = _expected_order(by_synset)
    got = [r for shard in _all(from_tars, prefix, shards) for r in shard]
    assert [(r["image/class/synset"][1][0].decode(), r["image/filename"][1][0].decode())
            for r in got] == expected
    for r in got:
        assert set(r) == set(slim.SCHEMA) and len(r) == 15
        assert {k: v[0] for k, v in r.items()} == slim.SCHEMA
        synset = r["image/class/synset"][1][0].decode()
        assert r["image/class/label"][1] == [SYNSETS.index(synset) + 1]
        assert r["image/class/text"][1] == [TEXTS[synset].encode("utf-8")]


def test_validation_is_shuffled_not_sorted(from_tars):
    names = [r["image/filename"][1][0] for shard in _all(from_tars, "validation", 128)
             for r in shard]
    assert len(names) == 12 and names != sorted(names)


def test_boxes_float32_lists_and_labels(from_tars, slim_release, csv_file):
    want = {}
    for line in expected_csv(slim_release[1]):
        name, *coords = line.split(",")
        want.setdefault(name, []).append([float(c) for c in coords])
    seen = 0
    for r in (r for shard in _all(from_tars, "train", 1024) for r in shard):
        name = r["image/filename"][1][0].decode()
        boxes = want.get(name, [])
        label = r["image/class/label"][1][0]
        for i, key in enumerate(BOX_KEYS):
            f32 = [struct.unpack("<f", struct.pack("<f", b[i]))[0] for b in boxes]
            assert r[key] == ("float", f32)
        assert r["image/object/bbox/label"] == ("int64", [label] * len(boxes))
        seen += bool(boxes)
    assert seen == 8
    for r in (r for shard in _all(from_tars, "validation", 128) for r in shard):
        assert all(r[k] == ("float", []) for k in BOX_KEYS)   # present, empty


def test_slim_decoder_keys_parse(from_tars, tf):
    """The keys research/slim datasets/imagenet.py reads (A11)."""
    paths = [p for p in shard_paths(from_tars, "train", 1024) +
             shard_paths(from_tars, "validation", 128) if os.path.getsize(p)]
    assert parse_with_slim_keys(tf, paths) == 10


def test_tree_source_gives_identical_records(from_tars, slim_release, csv_file, tmp_path):
    raw = str(tmp_path / "raw-data")
    with pool.Pool(0) as runner:
        cli_slim.extract_raw(slim_release[0], raw, shipped.SYNSETS_FILE, runner,
                             log=open(os.devnull, "w"))
    out = str(tmp_path / "out")
    convert(out, train_dir=os.path.join(raw, "train"), val_dir=os.path.join(raw, "validation"),
            bbox_file=csv_file)
    for prefix, n in (("train", 1024), ("validation", 128)):
        for a, b in zip(shard_paths(from_tars, prefix, n), shard_paths(out, prefix, n)):
            assert open(a, "rb").read() == open(b, "rb").read(), b


def test_num_threads_changes_boundaries_only(slim_release, tmp_path):
    counts = {}
    for t in (8, 64):
        out = str(tmp_path / str(t))
        convert(out, source_dir=slim_release[0], train_shards=64, val_shards=64,
                num_threads=t, do_verify=False)
        got = _all(out, "train", 64)
        assert [len(s) for s in got] == [e - s for s, e in plan.thread_shards(30, 64, t)]
        counts[t] = [r["image/filename"][1][0] for s in got for r in s]
    assert counts[8] == counts[64]      # same order, different cuts
    assert [e - s for s, e in plan.thread_shards(30, 64, 8)] != \
        [e - s for s, e in plan.thread_shards(30, 64, 64)]


def _starts_sha(n, shards, threads):
    starts = [s for s, _ in plan.thread_shards(n, shards, threads)]
    return starts, hashlib.sha256(json.dumps(starts).encode()).hexdigest()[:16]


@pytest.mark.parametrize("n, shards, threads, head, sha", [
    (50000, 128, 8, [0, 390, 781, 1171, 1562, 1953, 2343], "e05ea1f0ef124448"),
    (50000, 128, 64, [0, 390, 781, 1171, 1562, 1952, 2343], "fcd6ed854ae9231c"),
    (1281167, 1024, 8, [0, 1251, 2502, 3753, 5004, 6255, 7506, 8757, 10009, 11260],
     "029663bfd5a025e2"),
    (1281167, 1024, 64, [0, 1251], "819c6afe8eddf43e"),
])
def test_imagenet_shard_vectors(n, shards, threads, head, sha):
    starts, digest = _starts_sha(n, shards, threads)
    assert starts[:len(head)] == head and digest == sha


def test_imagenet_size_histograms_and_spacing():
    for n, s, hist in ((1281167, 1024, {1251: 881, 1252: 143}),
                       (50000, 128, {390: 48, 391: 80})):
        for t in (8, 64):
            sizes = [e - b for b, e in plan.thread_shards(n, s, t)]
            assert {k: sizes.count(k) for k in set(sizes)} == hist
    assert plan._linspace_trunc(0, 1281167, 9) == [
        0, 160145, 320291, 480437, 640583, 800729, 960875, 1121021, 1281167]


@pytest.mark.parametrize("n, shards, threads, ranges", [
    (10, 4, 1, [(0, 2), (2, 5), (5, 7), (7, 10)]),
    (10, 4, 2, [(0, 2), (2, 5), (5, 7), (7, 10)]),
    (10, 4, 4, [(0, 2), (2, 5), (5, 7), (7, 10)]),
    (3, 4, 2, [(0, 0), (0, 1), (1, 2), (2, 3)]),
])
def test_small_shard_vectors(n, shards, threads, ranges):
    assert plan.thread_shards(n, shards, threads) == ranges


def test_small_vector_100_8_8():
    bounds = [s for s, _ in plan.thread_shards(100, 8, 8)] + [100]
    assert bounds == [0, 12, 25, 37, 50, 62, 75, 87, 100]


# --------------------------------------------------------------------------- errors

def test_missing_synset_text_names_synset_and_file(slim_release, tmp_path):
    meta = tmp_path / "meta.txt"
    meta.write_text("".join(l + "\n" for l in shipped.read_lines(shipped.METADATA_FILE)
                            if not l.startswith("n01440764\t")))
    with pytest.raises(UserError) as err:
        convert(str(tmp_path / "o"), source_dir=slim_release[0], metadata_file=str(meta))
    assert "n01440764" in str(err.value) and str(meta) in str(err.value)


@pytest.mark.parametrize("content, words", [
    ("n01440764\ttench\n\nn01443537\tgoldfish\n", "line 2"),
    ("n01440764\ttench\tTinca\n", "line 1"),
])
def test_bad_metadata_lines(tmp_path, content, words):
    meta = tmp_path / "meta.txt"
    meta.write_text(content)
    with pytest.raises(UserError) as err:
        slim.load_metadata(str(meta))
    assert words in str(err.value) and str(meta) in str(err.value)


def test_bad_csv_line(tmp_path):
    f = tmp_path / "b.csv"
    f.write_text("a.JPEG,0.1,0.2,0.3,0.4\na.JPEG,0.1,0.2,0.3\n")
    with pytest.raises(UserError) as err:
        slim.load_boxes(str(f))
    assert "line 2" in str(err.value)
    f.write_text("a.JPEG,0.1,0.2,0.3,0.4\na.JPEG,0.5,0.6,0.7,0.8\n")
    assert slim.load_boxes(str(f)) == {"a.JPEG": [(0.1, 0.2, 0.3, 0.4), (0.5, 0.6, 0.7, 0.8)]}


@pytest.mark.parametrize("train, val, threads", [(1024, 128, 3), (10, 128, 8), (0, 8, 8),
                                                 (8, 8, 0)])
def test_layout_checks_are_usage_errors(train, val, threads):
    with pytest.raises(UsageError):
        slim.check_layout(train, val, threads)


def test_output_directory_must_exist(slim_release, tmp_path):
    with pytest.raises(UserError) as err:
        with pool.Pool(0) as runner:
            slim.convert(str(tmp_path / "nope"), runner, source_dir=slim_release[0])
    assert "does not exist" in str(err.value)


def test_bad_image_stops_the_run_naming_it(slim_release, tmp_path):
    tree = tmp_path / "train" / "n01440764"
    tree.mkdir(parents=True)
    (tree / "n01440764_1.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    val = tmp_path / "val" / "n01440764"
    val.mkdir(parents=True)
    (val / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(UserError) as err:
        convert(str(tmp_path / "o"), train_dir=str(tmp_path / "train"),
                val_dir=str(tmp_path / "val"), train_shards=8, val_shards=8)
    assert "ILSVRC2012_val_00000001.JPEG" in str(err.value)
    assert not [n for n in os.listdir(tmp_path / "o") if n.startswith("validation-")
                and os.path.getsize(tmp_path / "o" / n)]


def test_flat_validation_directory_is_explained(slim_release, tmp_path):
    flat = tmp_path / "val"
    flat.mkdir()
    (flat / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"x")
    with pytest.raises(UserError) as err:
        convert(str(tmp_path / "o"), train_dir=str(flat), val_dir=str(flat))
    assert "preprocess_imagenet_validation_data.py" in str(err.value)
