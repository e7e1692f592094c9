"""Issue 15 point 1: a Kaggle copy's validation labels come from its own
LOC_val_solution.csv (build.sh, imagenet_to_gcs.py, verify.sh and the slim path);
--labels and DIR/synset_labels.txt still override; a bad solution file is one line."""

import io
import os

import pytest

from conftest import python, run_cmd
from kaggle_copy import (CLS, SYNSETS, loc_files, mapping_txt, release_files, solution_csv,
                         write_tree, write_zip)
from test_kaggle_source import _same_shards

from ilsvrc import pool, shipped
from ilsvrc.sources import val_labels
from ilsvrc.formats import official, slim
from ilsvrc.cli import build as cli_build, verify as cli_verify
from ilsvrc.errors import UserError

ZIP = "imagenet-object-localization-challenge.zip"


def _convert(raw, out, **kw):
    log = io.StringIO()
    with pool.Pool(0) as runner:
        official.convert(raw, out, runner, log=log, do_verify=False, **kw)
    return log.getvalue()


@pytest.fixture(scope="module")
def from_tars(sample_release, tmp_path_factory):
    """Records from the tars, labelled by the sample's own synset_labels.txt (which
    differs from the shipped file)."""
    raw, manifest = sample_release
    lines = open(shipped.VAL_LABELS_FILE).read().split()
    assert manifest["val"] != lines[:len(manifest["val"])]
    out = str(tmp_path_factory.mktemp("tars-own-labels"))
    log = _convert(raw, out)
    assert "validation labels from %s" % os.path.join(raw, "synset_labels.txt") in log
    return out


def kaggle_files(sample_release, **kw):
    raw, manifest = sample_release
    return release_files(raw) + sorted(loc_files(manifest["val"], **kw).items())


@pytest.mark.parametrize("form", ["tree", "zip"])
def test_kaggle_copy_is_labelled_by_its_solution_file(sample_release, from_tars, tmp_path,
                                                      form):
    d = str(tmp_path / "kaggle")
    os.makedirs(d)
    files = kaggle_files(sample_release)
    if form == "tree":
        write_tree(d, files)
        want = os.path.join(d, "LOC_val_solution.csv")
    else:
        write_zip(os.path.join(d, ZIP), files)
        want = os.path.join(d, ZIP) + ":LOC_val_solution.csv"
    out = str(tmp_path / "out")
    log = _convert(d, out)
    assert "validation labels from %s\n" % want in log
    _same_shards(from_tars, out)
    # verify.sh --source rebuilds the plan with the same labels
    assert cli_verify.main(["official", out, "--source", d, "-j", "0"]) == 0


def test_tree_given_as_the_ilsvrc_folder_finds_loc_files_beside_it(sample_release,
                                                                   from_tars, tmp_path):
    top = write_tree(str(tmp_path / "kaggle"), kaggle_files(sample_release))
    out = str(tmp_path / "out")
    log = _convert(os.path.join(top, "ILSVRC"), out)
    assert "validation labels from %s\n" % os.path.join(top, "LOC_val_solution.csv") in log
    _same_shards(from_tars, out)


def test_labels_and_synset_labels_txt_override(sample_release, tmp_path):
    raw, manifest = sample_release
    shipped_file = shipped.VAL_LABELS_FILE
    d = write_tree(str(tmp_path / "kaggle"), kaggle_files(sample_release))
    log = _convert(d, str(tmp_path / "a"), label_file=shipped_file)
    assert "validation labels from %s\n" % shipped_file in log
    with open(os.path.join(d, "synset_labels.txt"), "w") as f:
        f.write("".join(s + "\n" for s in manifest["val"]))
    log = _convert(d, str(tmp_path / "b"))
    assert "validation labels from %s\n" % os.path.join(d, "synset_labels.txt") in log


def test_slim_path_groups_validation_by_the_solution_file(sample_release, tmp_path):
    raw, manifest = sample_release
    d = write_tree(str(tmp_path / "kaggle"), kaggle_files(sample_release))
    log = io.StringIO()
    with pool.Pool(0) as runner:
        _, val = slim.source_listings(d, runner, log=log)
    assert "validation labels from %s\n" % os.path.join(d, "LOC_val_solution.csv") \
        in log.getvalue()
    got = {val.names[i]: val.group_of(i) for i in range(len(val))}
    assert got == {"ILSVRC2012_val_%08d.JPEG" % (k + 1): s
                   for k, s in enumerate(manifest["val"])}


# ---------------------------------------------------------------- bad solution files

def _labels(solution, mapping=None):
    return val_labels.SolutionLabels(solution, "/k/LOC_val_solution.csv",
                                        mapping_txt() if mapping is None else mapping,
                                        "/k/LOC_synset_mapping.txt")


NAMES = ["ILSVRC2012_val_%08d.JPEG" % k for k in (1, 2, 3)]
GOOD = ["n01440764", "n01443537", "n15075141"]


def test_rows_in_any_order_first_token_is_the_synset():
    labels = _labels(solution_csv(GOOD + ["n01484850"]))
    assert labels.lines_for(NAMES) == GOOD + ["n01484850"]
    partial = _labels(solution_csv(GOOD, numbers=[1, 3]))
    assert partial.lines_for([NAMES[0], NAMES[2]]) == [GOOD[0], "", GOOD[2]]


def test_missing_image_row_names_the_image():
    labels = _labels(solution_csv(GOOD, numbers=[1, 3]))
    with pytest.raises(UserError, match=r"^/k/LOC_val_solution.csv has no row for the "
                       r"validation image ILSVRC2012_val_00000002.JPEG\."):
        labels.lines_for(NAMES)


def test_duplicate_row_names_both_lines():
    text = solution_csv(GOOD) + "ILSVRC2012_val_00000002,n01440764 1 2 3 4\n"
    with pytest.raises(UserError, match=r"LOC_val_solution.csv line 5 names "
                       r"ILSVRC2012_val_00000002 again \(first on line \d\)"):
        _labels(text)


def test_synset_outside_the_mapping():
    mapping = mapping_txt(SYNSETS[:999])
    with pytest.raises(UserError, match=r"line \d labels ILSVRC2012_val_00000003 as "
                       r"n15075141, which /k/LOC_synset_mapping.txt does not list"):
        _labels(solution_csv(GOOD), mapping)


@pytest.mark.parametrize("text, needle", [
    ("ImageId,Prediction\n", "the first line should be 'ImageId,PredictionString'"),
    ("ImageId,PredictionString\nILSVRC2012_val_00000001\n", "line 2: expected"),
    ("ImageId,PredictionString\nILSVRC2012_val_00000001,\n", "line 2: expected"),
    ("ImageId,PredictionString\nILSVRC2012_val_00000001,dog 1 2 3 4\n",
     "line 2: 'dog' is not a synset"),
])
def test_malformed_rows(text, needle):
    with pytest.raises(UserError, match="^/k/LOC_val_solution.csv") as err:
        _labels(text)
    assert needle in str(err.value)


def test_malformed_mapping():
    with pytest.raises(UserError, match="LOC_synset_mapping.txt line 2 repeats n01440764"):
        _labels(solution_csv(GOOD), "n01440764 a\nn01440764 b\n")


def _build(capsys, d, *extra):
    code = cli_build.main([d, "-j", "0", "--no-verify", "-o", d + "-out"] + list(extra))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()[-1]


@pytest.mark.parametrize("form", ["tree", "zip"])
def test_build_sh_stops_with_one_line(sample_release, tmp_path, capsys, form):
    raw, manifest = sample_release
    files = release_files(raw) + sorted(loc_files(manifest["val"],
                                                  numbers=range(1, 12)).items())
    d = str(tmp_path / "kaggle")
    os.makedirs(d)
    if form == "tree":
        write_tree(d, files)
    else:
        write_zip(os.path.join(d, ZIP), files)
    code, last = _build(capsys, d)
    assert code == 1
    assert last.startswith("build.sh: error: ") and "LOC_val_solution.csv has no row for " \
        "the validation image ILSVRC2012_val_00000012.JPEG" in last
    # an explicit label file overrides the incomplete one
    code, last = _build(capsys, d, "--labels", os.path.join(raw, "synset_labels.txt"))
    assert code == 0, last


def test_kaggle_tree_without_solution_file_is_an_error(sample_release, tmp_path, capsys):
    d = write_tree(str(tmp_path / "kaggle"), release_files(sample_release[0]))
    code, last = _build(capsys, d)
    assert code == 1
    assert "no LOC_val_solution.csv in %s" % d in last and "label file" in last
    os.remove(os.path.join(d, CLS, "val", "ILSVRC2012_val_00000001.JPEG"))
    with open(os.path.join(d, "LOC_val_solution.csv"), "w") as f:
        f.write(solution_csv(sample_release[1]["val"]))
    code, last = _build(capsys, d)
    assert code == 1 and "missing %s" % os.path.join(d, "LOC_synset_mapping.txt") in last


def test_imagenet_to_gcs_takes_the_solution_file(sample_release, from_tars, tmp_path):
    d = str(tmp_path / "kaggle")
    os.makedirs(d)
    write_zip(os.path.join(d, ZIP), kaggle_files(sample_release))
    out = str(tmp_path / "out")
    r = run_cmd([python(), "official/imagenet_to_gcs.py", "--raw_data_dir=" + d,
                 "--local_scratch_dir=" + out, "--nogcs_upload", "--num_workers=0",
                 "--noverify"])
    assert r.returncode == 0, r.stderr
    assert "validation labels from %s:LOC_val_solution.csv" % os.path.join(d, ZIP) in r.stderr
    _same_shards(from_tars, out)


def test_an_indexed_zip_run_reads_its_labels_without_walking_the_zip(
        sample_release, tmp_path, monkeypatch):
    from ilsvrc.sources import cached, discover, kagglezip
    d = str(tmp_path / "kaggle")
    os.makedirs(d)
    write_zip(os.path.join(d, ZIP), kaggle_files(sample_release))
    source = discover.find_source(d)
    path = str(tmp_path / "zip.index")
    with pool.Pool(0) as runner:
        walked = cached.write_index(source, runner, path, log=io.StringIO())
        assert set(walked[1].side_files) == {"LOC_val_solution.csv",
                                            "LOC_synset_mapping.txt"}

        def no_walk(path):
            raise AssertionError("walked the zip's central directory")
        monkeypatch.setattr(kagglezip, "zip_members", no_walk)
        listings, options = official.read_source(source, runner, index_file=path,
                                                 log=io.StringIO())
    assert options.label_file == "%s:LOC_val_solution.csv" % os.path.join(d, ZIP)
    assert listings[1].side_files == walked[1].side_files
