"""process_bounding_boxes: CSV lines of the generated annotations."""

import io
import os
import tarfile

import pytest

from conftest import python, run_cmd
from ilsvrc import shipped
from ilsvrc.formats import bbox
from ilsvrc.errors import UserError
from slim_helpers import expected_csv

SCRIPT = os.path.join("slim", "datasets", "process_bounding_boxes.py")
SYNSETS = set(shipped.read_lines(shipped.SYNSETS_FILE))


def _archive(release):
    return os.path.join(release[0], bbox.ARCHIVE)


@pytest.fixture(scope="module")
def extracted(slim_release, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("bbox_dir"))
    with tarfile.open(_archive(slim_release)) as tar:
        tar.extractall(d, filter="data")
    return d


def _lines(source, synsets=None):
    log = io.StringIO()
    return sorted(bbox.csv_lines(source, synsets, log)), log.getvalue()


def test_archive_lines_match_hand_computed(slim_release):
    lines, log = _lines(_archive(slim_release), SYNSETS)
    assert lines == expected_csv(slim_release[1])
    # degenerate (3 boxes) and object0 (2 boxes) skipped; foreign, degenerate and
    # object0 files skipped
    assert "11 annotation files, 3 skipped" in log and "5 boxes skipped" in log
    assert "10 boxes written for 8 images" in log


def test_directory_and_archive_agree(slim_release, extracted):
    assert _lines(extracted, SYNSETS)[0] == _lines(_archive(slim_release), SYNSETS)[0]
    assert _lines(extracted)[0] == _lines(_archive(slim_release))[0]


def test_without_synsets_file_nothing_is_filtered_by_label(slim_release):
    lines, _ = _lines(_archive(slim_release))
    assert lines == expected_csv(slim_release[1], synsets_filter=False)


def test_images_without_annotation_get_no_line(slim_release):
    lines, _ = _lines(_archive(slim_release), SYNSETS)
    named = {line.split(",")[0] for line in lines}
    last = sorted(slim_release[1]["train"])[-1]
    assert not any(n.startswith(last) for n in named)


def _xml(objects="", size="<size><width>10</width><height>20</height></size>",
         extra="<filename>x</filename>"):
    return ("<annotation>%s%s%s</annotation>" % (extra, size, objects)).encode()


def _obj(name, *c):
    return ("<object><name>%s</name><bndbox><xmin>%d</xmin><ymin>%d</ymin><xmax>%d</xmax>"
            "<ymax>%d</ymax></bndbox></object>" % ((name,) + c))


def test_parse_quirks():
    # label of the first object for all; counting stops at an xmin of -1
    w, h, label, corners = bbox.parse(_xml(_obj("a", 1, 2, 3, 4) + _obj("b", 5, 6, 7, 8)
                                           + _obj("c", -1, 0, 1, 1)), "f.xml")
    assert (w, h, label, corners) == (10, 20, "a", [(1, 2, 3, 4), (5, 6, 7, 8)])
    # a missing filename tag is tolerated (the tag is unused)
    assert bbox.parse(_xml(_obj("a", 1, 2, 3, 4), extra=""), "f.xml")[3] == [(1, 2, 3, 4)]
    assert bbox.scale([(15, 30, -5, 10)], 10, 20) == [(0.0, 0.5, 1.0, 1.0)]


@pytest.mark.parametrize("doc, words", [
    (b"<annotation><size>", "not well-formed XML"),
    (_xml(_obj("a", 1, 2, 3, 4), size="<size><width>0</width><height>5</height></size>"),
     "image size"),
    (_xml("<object><bndbox><xmin>1.5</xmin></bndbox></object>"), "not an integer"),
    (_xml("<object><bndbox><xmin>1</xmin></bndbox></object>"), "no ymin"),
])
def test_bad_annotation_names_the_file(doc, words):
    with pytest.raises(UserError) as err:
        bbox.parse(doc, "n01/n01_7.xml")
    assert "n01/n01_7.xml" in str(err.value) and words in str(err.value)


def test_script_output_sorted_equals_expected(slim_release, extracted):
    for source in (_archive(slim_release), extracted):
        r = run_cmd([python(), SCRIPT, source, shipped.SYNSETS_FILE])
        assert r.returncode == 0, r.stderr
        assert sorted(r.stdout.splitlines()) == expected_csv(slim_release[1])
        assert "boxes written" in r.stderr and "boxes written" not in r.stdout


@pytest.mark.parametrize("args", [[], ["a", "b", "c"]])
def test_script_usage_exit_255(args):
    r = run_cmd([python(), SCRIPT] + args)
    assert r.returncode == 255 and "usage" in r.stderr and r.stdout == ""


def test_script_bad_xml_stops_with_file_name(extracted, tmp_path):
    d = tmp_path / "boxes" / "n01440764"
    d.mkdir(parents=True)
    (d / "n01440764_1.xml").write_bytes(b"<annotation><object>")
    r = run_cmd([python(), SCRIPT, str(tmp_path / "boxes")])
    assert r.returncode == 1 and "n01440764_1.xml" in r.stderr
    assert "Traceback" not in r.stderr


def test_truncated_archive_is_an_error(slim_release, tmp_path):
    blob = open(_archive(slim_release), "rb").read()
    bad = tmp_path / bbox.ARCHIVE
    bad.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(UserError) as err:
        _lines(str(bad))
    assert bbox.ARCHIVE in str(err.value)


def test_sample_bbox_is_opt_in_and_leaves_the_rest_alone(tmp_path):
    from ilsvrc.testing import sample
    plain = sample.generate(str(tmp_path / "a"), classes=2, per_class=2, val=2, seed=3)
    boxed = sample.generate(str(tmp_path / "b"), classes=2, per_class=2, val=2, seed=3,
                            bbox=True)
    assert "bbox" not in plain and sorted(os.listdir(tmp_path / "a")) == [
        "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "synset_labels.txt"]
    for name in os.listdir(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert sorted(boxed["bbox"].values()) == sorted(
        ["normal", "two", "swapped", "outside", "foreign"])
    with tarfile.open(tmp_path / "b" / bbox.ARCHIVE) as tar:
        files = [m.name for m in tar if m.isfile()]
    assert all(len(n.split("/")) == 2 and n.endswith(".xml") for n in files)
