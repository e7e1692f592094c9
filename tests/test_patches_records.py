"""The change-record format (patches/records.py) and the records themselves."""

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PATCHES = REPO / "patches"


def _load_records():
    spec = importlib.util.spec_from_file_location("patches_records", PATCHES / "records.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


records = _load_records()
LOCK = records.load_lock(PATCHES / "upstream.lock")
REQUIRED = records.load_required(PATCHES / "required.txt")
ALL_RECORDS = records.load_dir(PATCHES)

PIN = "0123456789abcdef0123456789abcdef01234567"
GOOD = f"""\
# a comment before the first record
id:       P2, DAR-binary-read
upstream: example/repo dir/file.py @ {PIN} : 12-14
breaks:   first line
          second line
# a comment inside a record
port:     reads bytes
where:    TODO
test:     tests/test_x.py::test_one tests/test_x.py::test_two

id: A14-credentials
upstream: example/repo dir/file.py @ {PIN[:7]} : ?
breaks: b
port: p
where: slim/x.py:main
test: TODO
spec: §7
"""


# ------------------------------------------------------------------ parser units

def test_parse_text_reads_fields_continuations_and_line_numbers():
    recs = records.parse_text(GOOD, "x.patch")
    assert len(recs) == 2
    first, second = recs
    assert first["breaks"] == "first line\nsecond line"
    assert records.split_ids(first["id"]) == ["P2", "DAR-binary-read"]
    assert first["_line"] == 2 and first["_lines"]["port"] == 7
    assert second["_line"] == 11 and second["spec"] == "§7"
    assert records.parse_upstream(first["upstream"]) == records.Upstream(
        "example/repo", "dir/file.py", PIN, 12, 14)
    assert records.parse_upstream(second["upstream"]).first is None
    assert records.parse_tests(first["test"]) == [
        ("tests/test_x.py", "test_one"), ("tests/test_x.py", "test_two")]
    assert records.parse_tests(second["test"]) == []


BAD_CASES = {
    "unknown field": ("colour: red\n", 1, "unknown field"),
    "repeated field": ("id: P1\nid: P2\n", 2, "twice"),
    "missing field": ("id: P1\nbreaks: x\n", 1, "lacks field"),
    "stray continuation": ("   floating\n", 1, "continuation"),
    "not a field": ("just words\n", 1, "expected 'field: value'"),
    "bad upstream": (GOOD.replace(": 12-14", ": line 12"), 3, "upstream"),
    "bad test": (GOOD.replace("tests/test_x.py::test_one", "test_one"), 9, "test"),
    "bad id": (GOOD.replace("id:       P2,", "id:       p2,"), 2, "bad id"),
    "duplicate id": (GOOD.replace("A14-credentials", "P2"), 11, "already used"),
}


@pytest.mark.parametrize("text,line,words", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_parse_text_rejects_malformed_input_with_line_number(text, line, words):
    with pytest.raises(records.RecordError) as err:
        records.parse_text(text, "bad.patch")
    msg = str(err.value)
    assert msg.startswith(f"bad.patch:{line}:"), msg
    assert words in msg


def test_covers_accepts_sub_items_but_not_longer_numbers():
    assert records.covers(["A14-credentials"], "A14")
    assert records.covers(["A1"], "A1")
    assert not records.covers(["A14"], "A1")
    assert not records.covers(["A1"], "A14-credentials")


def test_set_lock_commit_rewrites_one_section_only(tmp_path):
    lock = tmp_path / "upstream.lock"
    shutil.copy(PATCHES / "upstream.lock", lock)
    before = records.load_lock(lock)
    records.set_lock_commit(lock, "download_imagenet.sh", "f" * 40)
    after = records.load_lock(lock)
    assert after["download_imagenet.sh"]["commit"] == "f" * 40
    assert {k: v for k, v in after.items() if k != "download_imagenet.sh"} == \
        {k: v for k, v in before.items() if k != "download_imagenet.sh"}
    assert "# Pinned upstream sources" in lock.read_text()   # comments survive


# ------------------------------------------------------------------ the real files

def test_lock_and_required_name_the_same_upstream_files():
    assert set(LOCK) == set(REQUIRED)
    assert {"imagenet_to_gcs.py", "build.sh", "build_imagenet_data.py",
            "preprocess_imagenet_validation_data.py", "process_bounding_boxes.py",
            "download_imagenet.sh", "download_and_convert_imagenet.sh"} == set(LOCK)


def test_every_record_file_belongs_to_a_lock_entry_and_points_at_one_of_its_pins():
    assert ALL_RECORDS, "no patches/*.patch found"
    for name, recs in ALL_RECORDS.items():
        assert name in LOCK, f"{name}.patch has no [{name}] in upstream.lock"
        entry = LOCK[name]
        pins = [(entry["repo"], entry["path"], entry["commit"])] + [
            (p["repo"], p["path"], p["commit"]) for p in entry["provenance"]]
        for rec in recs:
            up = records.parse_upstream(rec["upstream"])
            assert (up.repo, up.path, up.commit) in pins, \
                f"{rec['_file']}:{rec['_lines']['upstream']}: not a pin of [{name}]"


def _defined_tests(test_file):
    text = test_file.read_text(encoding="utf-8")
    return set(re.findall(r"^\s*(?:async\s+)?def\s+(\w+)\s*\(", text, re.M))


def test_every_named_test_exists():
    """(a) a record's test field that is not TODO names a def in tests/."""
    missing = []
    for recs in ALL_RECORDS.values():
        for rec in recs:
            for rel, func in records.parse_tests(rec["test"]):
                path = REPO / rel
                if not path.is_file() or func not in _defined_tests(path):
                    missing.append(f"{rec['_file']}:{rec['_lines']['test']}: {rel}::{func}")
    assert not missing, "tests named by records do not exist:\n" + "\n".join(missing)


def _coverage_params():
    for name in sorted(REQUIRED):
        exists = (PATCHES / f"{name}.patch").is_file()
        yield pytest.param(name, id=name, marks=[] if exists else pytest.mark.xfail(
            strict=False, reason="records are written when the port lands"))


@pytest.mark.parametrize("name", list(_coverage_params()))
def test_required_spec_items_have_a_record(name):
    """(b) every item required.txt lists for a file has a record in FILE.patch."""
    path = PATCHES / f"{name}.patch"
    assert path.is_file(), f"{path.name} not written yet"
    ids = [i for rec in records.parse_file(path) for i in records.split_ids(rec["id"])]
    missing = [want for want in REQUIRED[name] if not records.covers(ids, want)]
    assert not missing, f"{path.name} lacks records for: {' '.join(missing)}"
