"""`./verify.sh FORMAT OUT_DIR [--source DIR]`: finds every kind of damage, names it."""

import os
import shutil

import pytest

from conftest import REPO, run_cmd
from ilsvrc import pool
from ilsvrc.records import features, tfrecord
from ilsvrc.formats import official
from ilsvrc.cli import verify as cli_verify

B, I = features.BYTES, features.INT64


@pytest.fixture(scope="module")
def built(official_sample, tf):
    return official_sample


@pytest.fixture
def out(built, tmp_path):
    dst = str(tmp_path / "out")
    shutil.copytree(built, dst)
    return dst


def verify(capsys, *args):
    code = cli_verify.main(list(args) + ["-j", "0"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def nonempty(out, split="train"):
    d = os.path.join(out, split)
    return sorted(os.path.join(d, n) for n in os.listdir(d)
                  if n.startswith(split + "-") and os.path.getsize(os.path.join(d, n)))


def problems(err):
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("verify.sh: problem: ")]


def test_good_output(capsys, built, sample_release):
    code, stdout, err = verify(capsys, "official", built, "--source", sample_release[0])
    assert code == 0, err
    assert "30 records  (partial: 30 of 1,281,167)" in stdout
    assert "12 records  (partial: 12 of 50,000)" in stdout
    assert "every one of the 42 images" in stdout
    assert stdout.rstrip().endswith("OK: all 1152 shards check out")


def test_flipped_byte_is_a_crc_error(capsys, out):
    shard = nonempty(out)[0]
    with open(shard, "r+b") as f:
        f.seek(os.path.getsize(shard) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    code, _, err = verify(capsys, "official", out)
    assert code == 1
    [p] = problems(err)
    assert shard in p and "corrupt" in p
    assert err.rstrip().endswith("1 problem found in %s (listed above)" % out)


def test_short_shard_against_the_plan(capsys, out, sample_release):
    shard = nonempty(out, "validation")[0]
    open(shard, "wb").close()         # a clean cut at a record boundary
    code, _, _ = verify(capsys, "official", out)
    assert code == 0                  # framing alone cannot see it ...
    code, _, err = verify(capsys, "official", out, "--source", sample_release[0])
    assert code == 1                  # ... the plan can
    assert any(shard in p and "holds 0 records, planned 1" in p for p in problems(err))


def test_swapped_records_against_the_plan(capsys, out, sample_release):
    a, b = nonempty(out)[:2]
    shutil.copyfile(a, b)
    code, _, err = verify(capsys, "official", out, "--source", sample_release[0])
    assert code == 1
    [p] = problems(err)
    assert p.startswith("verify.sh: problem: %s record 0: holds " % b) and "planned" in p


def test_names_missing_unknown_and_partial(capsys, out):
    train = os.path.join(out, "train")
    os.remove(os.path.join(train, "train-00007-of-01024"))
    open(os.path.join(train, "train-01024-of-01024"), "wb").close()
    shutil.copyfile(os.path.join(out, "validation", "validation-00000-of-00128"),
                    os.path.join(train, "validation-00000-of-00128"))
    code, stdout, err = verify(capsys, "official", out)
    assert code == 1
    found = problems(err)
    assert len(found) == 3
    assert "1 of 1024 train shards missing (train-00007-of-01024)" in found[0]
    assert any("train-01024-of-01024: unknown shard name" in p for p in found)
    assert any("train/validation-00000-of-00128: unknown shard name" in p for p in found)


def test_leftover_partial_is_only_a_warning(capsys, out):
    open(os.path.join(out, "train", ".train-00003-of-01024.partial"), "wb").close()
    code, stdout, _ = verify(capsys, "official", out)
    assert code == 0
    assert "warning: " in stdout and ".train-00003-of-01024.partial" in stdout


def _write_one(path, feats):
    with open(path, "wb") as f:
        f.write(tfrecord.frame(features.encode(feats)))


def _features(label, drop=()):
    feats = {"image/height": (I, [1]), "image/width": (I, [1]),
             "image/colorspace": (B, [b"RGB"]), "image/channels": (I, [3]),
             "image/class/label": (I, [label]), "image/class/synset": (B, [b"n01440764"]),
             "image/format": (B, [b"JPEG"]), "image/filename": (B, [b"x.JPEG"]),
             "image/encoded": (B, [b"\xff\xd8"])}
    for key in drop:
        del feats[key]
    return feats


@pytest.mark.parametrize("feats,words", [
    (_features(0), "image/class/label [0] outside 1..1000"),
    (_features(1001), "outside 1..1000"),
    (_features(5, drop=["image/class/synset"]), "missing ['image/class/synset']"),
    (dict(_features(5), **{"image/class/text": (B, [b"tench"])}),
     "extra ['image/class/text']"),
    (dict(_features(5), **{"image/height": (B, [b"1"])}),
     "image/height is bytes, expected int64"),
])
def test_record_contents(capsys, out, feats, words):
    shard = os.path.join(out, "validation", "validation-00127-of-00128")
    _write_one(shard, feats)
    code, _, err = verify(capsys, "official", out)
    assert code == 1
    [p] = problems(err)
    assert "%s record 0: " % shard in p and words in p


def test_wrong_format(capsys, built):
    code, _, err = verify(capsys, "slim", built)
    assert code == 1
    assert any("1024 of 1024 train shards missing" in p for p in problems(err))


def test_slim_with_source_checks_every_image(capsys, sample_release, tmp_path):
    from ilsvrc.formats import slim
    out = str(tmp_path / "slim")
    os.makedirs(out)
    with pool.Pool(0) as runner:
        slim.convert(out, runner, source_dir=sample_release[0], num_threads=4,
                     val_label_file=os.path.join(sample_release[0], "synset_labels.txt"),
                     do_verify=False, log=open(os.devnull, "w"))
    labels = os.path.join(sample_release[0], "synset_labels.txt")
    code, stdout, err = verify(capsys, "slim", out, "--source", sample_release[0],
                               "--labels", labels, "--num-threads", "4")
    assert code == 0, err
    assert "every one of the 42 images" in stdout
    # the wrong thread layout moves shard boundaries: verify notices
    code, _, err = verify(capsys, "slim", out, "--source", sample_release[0],
                          "--labels", labels, "--num-threads", "8")
    assert code == 1 and "planned" in err


def test_verify_sh(built, sample_release):
    result = run_cmd([os.path.join(REPO, "verify.sh"), "official", built, "--source",
                      sample_release[0], "-j", "2"])
    assert result.returncode == 0, result.stderr
    assert "OK: all 1152 shards check out" in result.stdout
    result = run_cmd([os.path.join(REPO, "verify.sh"), "official", built + "/nowhere"])
    assert result.returncode == 1
    assert result.stderr.strip() == ("verify.sh: error: %s/nowhere is not a directory "
                                     "(the conversion's output directory)" % built)
