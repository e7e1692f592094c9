"""The Kaggle copy (unpacked tree and zip read in place) gives the same records."""

import io
import os
import zipfile

import pytest

from kaggle_copy import release_files as _release_files

from ilsvrc import pool, shipped
from ilsvrc.formats import official

CLS = "ILSVRC/Data/CLS-LOC"


def _convert(raw, out, source="auto"):
    with pool.Pool(0) as runner:
        official.convert(raw, out, runner, source=source, log=io.StringIO(),
                         label_file=shipped.VAL_LABELS_FILE)


def _same_shards(a, b):
    for split, n in (("train", 1024), ("validation", 128)):
        for k in range(n):
            name = "%s-%05d-of-%05d" % (split, k, n)
            with open(os.path.join(a, split, name), "rb") as fa, \
                    open(os.path.join(b, split, name), "rb") as fb:
                assert fa.read() == fb.read(), name


@pytest.fixture(scope="module")
def from_tars(sample_release, tmp_path_factory):
    raw, _ = sample_release
    out = str(tmp_path_factory.mktemp("from-tars"))
    _convert(raw, out)
    return raw, out


def test_kaggle_tree_gives_the_tar_records(from_tars, tmp_path):
    raw, tar_out = from_tars
    root = tmp_path / "kaggle"
    for name, data in _release_files(raw):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "LOC_synset_mapping.txt").write_text("")
    out = str(tmp_path / "out")
    _convert(str(root), out)
    _same_shards(tar_out, out)


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_kaggle_zip_read_in_place_gives_the_tar_records(from_tars, tmp_path, compression):
    raw, tar_out = from_tars
    d = tmp_path / "dl"
    d.mkdir()
    with zipfile.ZipFile(d / "imagenet-object-localization-challenge.zip", "w",
                         compression) as z:
        z.writestr("LOC_synset_mapping.txt", "n01440764 tench, Tinca tinca\n")
        for name, data in _release_files(raw):
            z.writestr(name, data)
    out = str(tmp_path / "out")
    _convert(str(d), out)
    _same_shards(tar_out, out)


def test_old_layout_zip_explains_prepare(tmp_path):
    d = tmp_path / "dl"
    d.mkdir()
    with zipfile.ZipFile(d / "imagenet-object-localization-challenge.zip", "w") as z:
        z.writestr("imagenet_object_localization_patched2019.tar.gz", b"\x1f\x8b")
        z.writestr("LOC_val_solution.csv", "ImageId,PredictionString\n")
    with pytest.raises(official.UserError, match="metalhead/prepare.py"):
        _convert(str(d), str(tmp_path / "out"))


def test_truncated_zip_is_reported(tmp_path):
    d = tmp_path / "dl"
    d.mkdir()
    path = d / "imagenet-object-localization-challenge.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(CLS + "/val/ILSVRC2012_val_00000001.JPEG", b"x" * 1000)
    path.write_bytes(path.read_bytes()[:700])
    with pytest.raises(official.UserError, match="incomplete or damaged"):
        _convert(str(d), str(tmp_path / "out"))
