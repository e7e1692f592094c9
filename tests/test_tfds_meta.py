"""TFDS metadata (--tfds-metadata): tfds.builder_from_directory reads our shards.

Needs tensorflow-datasets (pinned in requirements-test.txt); the tests that load
the data skip, with the reason, where it cannot be imported.
"""

import json
import os
import shutil

import pytest

from conftest import python, run_cmd
from ilsvrc.formats import official, slim
from ilsvrc.readerfiles import tfds_meta
from slim_helpers import records


def _tfds():
    return pytest.importorskip(
        "tensorflow_datasets", reason="tensorflow-datasets is not installed "
        "(./setup.sh --test installs the pinned version)")


@pytest.fixture(scope="module")
def official_out(sample_release, tmp_path_factory):
    src, _ = sample_release
    out = str(tmp_path_factory.mktemp("tfds-official") / "out")
    r = run_cmd(["./build.sh", src, "-o", out, "-j", "1", "--tfds-metadata"])
    assert r.returncode == 0, r.stderr
    assert "wrote TFDS metadata: %s/dataset_info.json" % out in r.stderr
    return out


@pytest.fixture(scope="module")
def slim_out(slim_release, tmp_path_factory):
    """The slim driver with --tfds-metadata (and --dali-index: both side by side)."""
    src, _ = slim_release
    top = str(tmp_path_factory.mktemp("tfds-slim") / "top")
    shutil.copytree(src, top)
    r = run_cmd(["slim/download_and_convert_imagenet.sh", top, "-j", "1",
                 "--tfds-metadata", "--dali-index"])
    assert r.returncode == 0, r.stderr
    return top


def _shard_records(out, sub, prefix, num):
    return [records(os.path.join(out, sub, "%s-%05d-of-%05d" % (prefix, k, num)))
            for k in range(num)]


def test_dataset_info_lists_every_shard_with_its_records(official_out):
    with open(os.path.join(official_out, "dataset_info.json")) as f:
        info = json.load(f)
    assert info["fileFormat"] == "tfrecord"
    splits = {s["name"]: s for s in info["splits"]}
    for sub, prefix, num in (("train", "train", 1024), ("validation", "validation", 128)):
        s = splits[prefix]
        assert s["filepathTemplate"] == sub + "/{SPLIT}-{SHARD_X_OF_Y}"
        assert [int(n) for n in s["shardLengths"]] == \
            [len(r) for r in _shard_records(official_out, sub, prefix, num)]
    with open(os.path.join(official_out, "image-class-label.labels.txt")) as f:
        names = f.read().split()
    assert names[0] == "background" and names[1:] == sorted(names[1:])


def test_features_json_is_what_tfds_writes_for_the_same_features(tmp_path):
    tfds = _tfds()
    import tensorflow as tf
    F = tfds.features
    for schema in (official.SCHEMA, slim.SCHEMA):
        ours = tfds_meta.features(schema, 1001)
        loaded = F.FeatureConnector.from_json(ours)
        spec = loaded.get_serialized_info()
        flat = {}

        def walk(node, prefix):
            for k, v in node.items():
                if isinstance(v, dict):
                    walk(v, prefix + k + "/")
                else:
                    flat[prefix + k] = v
        walk(spec, "")
        assert set(flat) == set(schema)   # TFDS's serialized keys are exactly ours
        for key, info in flat.items():
            kind = schema[key]
            assert info.dtype == {"bytes": tf.string, "int64": tf.int64,
                                  "float": tf.float32}[kind]
            assert info.shape == ((None,) if key.startswith("image/object/") else ())
        image = loaded["image"]["encoded"]
        assert isinstance(image, F.Image) and image.shape == (None, None, 3)
        assert isinstance(loaded["image"]["class"]["label"], F.ClassLabel)
        assert loaded["image"]["class"]["label"].num_classes == 1001
        # and TFDS itself writes the same features.json for what it loaded
        assert _features_file(loaded, tmp_path) == ours


def _features_file(features, tmp_path):
    d = tmp_path / ("f%d" % len(list(tmp_path.iterdir())))
    d.mkdir()
    features.save_config(str(d))
    with open(d / "features.json") as f:
        return json.load(f)


def _check_split(builder, split, shards, names):
    import tensorflow as tf
    want = [r for shard in shards for r in shard]
    got = list(builder.as_dataset(split=split, shuffle_files=False))
    assert len(got) == len(want) == builder.info.splits[split].num_examples
    label_feature = builder.info.features["image"]["class"]["label"]
    for ex, rec in zip(got, want):
        img = ex["image"]
        assert int(img["class"]["label"]) == rec["image/class/label"][1][0]
        assert label_feature.int2str(int(img["class"]["label"])) == \
            rec["image/class/synset"][1][0].decode()
        assert img["filename"].numpy() == rec["image/filename"][1][0]
        pixels = img["encoded"]
        assert pixels.dtype == tf.uint8
        assert tuple(pixels.shape) == (rec["image/height"][1][0],
                                       rec["image/width"][1][0], 3)
        if "object" in img:
            xmin = img["object"]["bbox"]["xmin"].numpy().tolist()
            assert xmin == pytest.approx(rec["image/object/bbox/xmin"][1])
            assert img["object"]["bbox"]["label"].numpy().tolist() == \
                rec["image/object/bbox/label"][1]
            names.update(img["class"]["text"].numpy().decode().split(", "))
    return len(got)


def test_builder_from_directory_reads_the_official_output(official_out):
    tfds = _tfds()
    builder = tfds.builder_from_directory(official_out)
    assert set(builder.info.splits) == {"train", "validation"}
    n = _check_split(builder, "train", _shard_records(official_out, "train", "train", 1024),
                     set())
    n += _check_split(builder, "validation",
                      _shard_records(official_out, "validation", "validation", 128), set())
    assert n == 42


def test_builder_from_directory_reads_the_slim_output(slim_out):
    tfds = _tfds()
    builder = tfds.builder_from_directory(slim_out)
    assert builder.info.features["image"]["class"]["label"].num_classes == 1001
    texts = set()
    n = _check_split(builder, "train", _shard_records(slim_out, "", "train", 1024), texts)
    n += _check_split(builder, "validation",
                      _shard_records(slim_out, "", "validation", 128), texts)
    assert n == 42 and "tench" in texts
    boxes = [len(r["image/object/bbox/xmin"][1])
             for shard in _shard_records(slim_out, "", "train", 1024) for r in shard]
    assert max(boxes) >= 2 and min(boxes) == 0   # lists of any length came through


def test_verify_checks_the_metadata(slim_out, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(slim_out, out)
    r = run_cmd(["./verify.sh", "slim", out, "-j", "1"])
    assert r.returncode == 0, r.stderr
    assert "TFDS metadata (%s/dataset_info.json): matches the shards" % out in r.stdout
    assert "DALI index files (%s/dali-index): all 1152 match" % out in r.stdout
    path = os.path.join(out, "dataset_info.json")
    with open(path) as f:
        info = json.load(f)
    info["splits"][0]["shardLengths"][0] = "7"
    with open(path, "w") as f:
        json.dump(info, f)
    r = run_cmd(["./verify.sh", "slim", out, "-j", "1"])
    assert r.returncode == 1
    assert "%s: split validation lists 128 shards with" % path in r.stderr
    assert "Traceback" not in r.stderr


def test_absl_front_end_flag(sample_release, tmp_path):
    src, _ = sample_release
    out = str(tmp_path / "out")
    r = run_cmd([python(), "official/imagenet_to_gcs.py", "--raw_data_dir=" + src,
                 "--local_scratch_dir=" + out, "--nogcs_upload", "--tfds_metadata",
                 "--noverify", "--num_workers=1"])
    assert r.returncode == 0, r.stderr
    assert os.path.isfile(os.path.join(out, "features.json"))
    with open(os.path.join(out, "dataset_info.json")) as f:
        assert sum(int(n) for s in json.load(f)["splits"] for n in s["shardLengths"]) == 42
