"""The slim driver on the Kaggle copy (tree and zip): same records as from the tars,
boxes taken from ILSVRC/Annotations/CLS-LOC/train, validation labels from the copy's
LOC_val_solution.csv."""

import os
import shutil
import tarfile
import zipfile

import pytest

from conftest import run_cmd
from kaggle_copy import loc_files, release_files as _release_files

from ilsvrc import shipped
from ilsvrc.formats import bbox

DRIVER = "slim/download_and_convert_imagenet.sh"


def _annotation_files(release_dir):
    with tarfile.open(os.path.join(release_dir, bbox.ARCHIVE)) as t:
        return [("ILSVRC/Annotations/CLS-LOC/train/" + m.name.lstrip("./"),
                 t.extractfile(m).read()) for m in t.getmembers() if m.isreg()]


def _shards(d):
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))
            if n.startswith(("train-", "validation-"))}


@pytest.fixture(scope="module")
def from_tars(slim_release, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("slim-tars"))
    for name in os.listdir(slim_release[0]):
        shutil.copy(os.path.join(slim_release[0], name), d)
    os.remove(os.path.join(d, "synset_labels.txt"))
    r = run_cmd([DRIVER, d, "-j", "0"])
    assert r.returncode == 0, r.stderr
    return d


@pytest.mark.parametrize("form", ["tree", "zip"])
def test_slim_driver_reads_the_kaggle_copy(slim_release, from_tars, tmp_path,
                                           form):
    # the tars were labelled by the shipped file (that copy has no synset_labels.txt);
    # the Kaggle copy carries the same labels in its own LOC_val_solution.csv
    labels = shipped.read_lines(shipped.VAL_LABELS_FILE)[:len(slim_release[1]["val"])]
    files = (_release_files(slim_release[0]) + _annotation_files(slim_release[0])
             + sorted(loc_files(labels).items()))
    d = tmp_path / "kaggle"
    d.mkdir()
    if form == "tree":
        for name, payload in files:
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(payload.encode() if isinstance(payload, str) else payload)
    else:
        with zipfile.ZipFile(d / "imagenet-object-localization-challenge.zip", "w",
                             zipfile.ZIP_DEFLATED) as z:
            for name, payload in files:
                z.writestr(name, payload)
    r = run_cmd([DRIVER, str(d), "-j", "0"])
    assert r.returncode == 0, r.stderr
    assert "validation labels from %s" % (
        d / "LOC_val_solution.csv" if form == "tree"
        else "%s:LOC_val_solution.csv" % (d / "imagenet-object-localization-challenge.zip")) \
        in r.stderr
    csv = "raw-data/" + bbox.CSV_NAME
    assert (d / csv).read_bytes() == open(os.path.join(from_tars, csv), "rb").read()
    ours, want = _shards(str(d)), _shards(from_tars)
    assert len(want) == 1024 + 128 and ours.keys() == want.keys()
    for name in want:
        assert ours[name] == want[name], name
