"""Bad-input corpus, verify (`./verify.sh` and the end-of-run verify of every front end):
a verify that passes means the labels are right, whatever the plan says.

Shards are tampered with through TensorFlow's own writer and Example proto, not
through the code under test."""

import io
import os
import shutil

import pytest

from contract_helpers import VERIFY, build, official_label, one_line_error, shard_files
from conftest import run_cmd
from ilsvrc import contract, plan, pool
from ilsvrc.formats import official
from ilsvrc import shipped as data
from ilsvrc.errors import UserError


# --------------------------------------------------------------------------- units

def test_shipped_synsets_are_the_1000_sorted_unique_valid():
    with open(data.SYNSETS_FILE, "rb") as f:
        lines = f.read().decode("ascii").split("\n")
    assert lines[-1] == "" and len(lines) == 1001
    lines = lines[:-1]
    assert lines == sorted(set(lines)) and all(contract.is_synset(s) for s in lines)
    assert contract.official_synsets() == tuple(lines)
    assert contract.official_labels()["n01440764"] == 1
    assert contract.official_labels()["n15075141"] == 1000


def test_a_damaged_synsets_file_is_refused(tmp_path):
    p = tmp_path / "synsets.txt"
    p.write_text("".join(s + "\n" for s in contract.official_synsets()[::-1]))
    with pytest.raises(contract.ContractError, match="sorted order"):
        contract.official_synsets(str(p))


@pytest.mark.parametrize("text,ok", [
    ("n01440764\n", True), ("n01440764", True), ("\ufeffn01440764\r\n", True),
    ("n01440764\r", True), ("n01440764\n\n", False), ("\nn01440764\n", False),
    ("n01440764 \n", False), ("n0144076\n", False), ("N01440764\n", False),
    ("n014407645\n", False), ("n01440764,1\n", False), ("", False), ("\n", False),
    ("n01440764\x00\n", False), ("n０1440764\n", False),
])
def test_label_file_syntax(tmp_path, text, ok):
    p = tmp_path / "labels.txt"
    p.write_bytes(text.encode("utf-8"))
    if ok:
        assert contract.read_synset_file(str(p)) == ["n01440764"]
    else:
        with pytest.raises(contract.ContractError, match="labels.txt"):
            contract.read_synset_file(str(p))


@pytest.mark.parametrize("names,ok", [
    (["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG"], True),
    (["a.JPEG", "b.JPEG"], True),
    (["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_2.JPEG"], False),
    (["ILSVRC2012_val_00000001.JPEG", "x.JPEG"], False),
])
def test_validation_numbering_all_or_none(names, ok):
    if ok:
        contract.check_numbering(names, "V")
    else:
        with pytest.raises(contract.ContractError, match="never a mix"):
            contract.check_numbering(names, "V")


def _std(*synsets):
    labels = contract.official_labels()
    return {s: {labels[s]} for s in synsets}


@pytest.mark.parametrize("pairs,exact,problem", [
    (_std("n01440764", "n15075141"), True, None),
    ({"n01440764": {1}, "n15075141": {2}}, False, None),       # tpu rule on a subset
    ({"n01440764": {1}, "n15075141": {2}}, True, "not its ILSVRC2012 label 1000"),
    ({"n01440764": {2}, "n15075141": {3}}, False, "at most 1"),  # shifted by a blank line
    ({"n01440764": {1, 2}}, False, "different labels"),
    ({"n01440764": {1}, "n01443537": {1}}, False, "given to 2 synsets"),
    ({"n01440764": {1}, "n99999999": {2}}, False, "not ILSVRC2012 synsets"),
    ({"": {1}, "n01440764": {2}}, False, "not ILSVRC2012 synsets"),
    ({"n01443537": {2}, "n01440764": {3}}, False, "at most 1"),
    ({"n01443537": {2}, "n01484850": {1}}, False, "sorted synsets"),
    ({s: {k + 2} for k, s in enumerate(contract.official_synsets())}, False, "at most"),
])
def test_label_map_contract(pairs, exact, problem):
    problems = contract.check_label_map(pairs, exact=exact)
    if problem is None:
        assert problems == []
    else:
        assert problems and problem in problems[0], problems


def test_all_1000_present_must_have_the_standard_labels():
    synsets = contract.official_synsets()
    pairs = {s: {k + 1} for k, s in enumerate(synsets)}
    assert contract.check_label_map(pairs) == []
    pairs[synsets[10]], pairs[synsets[11]] = {12}, {11}
    assert contract.check_label_map(pairs)


def test_custom_class_sets_only_need_one_synset_one_label():
    assert contract.check_label_map({"n99999999": {5000}}, custom=True) == []
    assert contract.check_label_map({"n99999999": {1, 2}}, custom=True)


# --------------------------------------------------------------------------- end of run

def test_end_of_run_verify_checks_the_contract_not_just_the_plan(sample_release, tmp_path,
                                                                 monkeypatch):
    """A plan built from bad inputs (here: every label +1, as one blank line in the
    label file did upstream) must not pass build.sh's own verify."""
    raw, _ = sample_release

    def shifted(synsets):
        return {s: k + 2 for k, s in enumerate(sorted(set(synsets)))}
    monkeypatch.setattr(plan, "labels_from_synsets", shifted)
    with pool.Pool(0) as runner, pytest.raises(UserError, match="n01440764"):
        official.convert(raw, str(tmp_path / "out"), runner, log=io.StringIO())


# --------------------------------------------------------------------------- verify.sh

@pytest.fixture(scope="module")
def converted(sample_release, official_sample):
    raw, manifest = sample_release
    return raw, manifest, official_sample


def tamper(out, tf, change):
    """Rewrite every non-empty shard with change(filename, label, synset) -> (label,
    synset), using TensorFlow's Example proto and writer."""
    for path in shard_files(out):
        if not os.path.getsize(path):
            continue
        examples = [tf.train.Example.FromString(r.numpy())
                    for r in tf.data.TFRecordDataset([path])]
        with tf.io.TFRecordWriter(path) as w:
            for ex in examples:
                f = ex.features.feature
                name = f["image/filename"].bytes_list.value[0].decode()
                label, synset = change(name, f["image/class/label"].int64_list.value[0],
                                       f["image/class/synset"].bytes_list.value[0].decode())
                f["image/class/label"].int64_list.value[0] = label
                f["image/class/synset"].bytes_list.value[0] = synset.encode()
                w.write(ex.SerializeToString())


def _verify(out):
    return run_cmd([VERIFY, "official", out, "-j", "0"])


def _verify_in_process(out):
    """verify.sh's command (python -m ilsvrc.cli.verify official OUT -j 0) run in this
    process, as a CompletedProcess: the same exit status, stdout and stderr, without
    a fresh interpreter importing TensorFlow (~6 s of CPU) for each tampered copy.
    test_clean_shards_verify runs verify.sh itself."""
    import contextlib
    import subprocess
    from ilsvrc.cli import verify as cli_verify
    args = ["official", out, "-j", "0"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli_verify.main(args)
    return subprocess.CompletedProcess([VERIFY] + args, code, stdout.getvalue(),
                                       stderr.getvalue())


def test_clean_shards_verify(converted):
    r = _verify(converted[2])
    assert r.returncode == 0, r.stderr
    assert "OK: all 1152 shards check out" in r.stdout


@pytest.mark.parametrize("case,words", [
    ("all+1", ["has label", "at most"]),
    ("one-val-record-other-label", ["different labels"]),
    ("label-1001", ["outside 1..1000"]),
    ("unknown-synset", ["not ILSVRC2012 synsets", "n99999999"]),
    ("swap-two-classes", ["label", "synset"]),
])
def test_tampered_labels_fail_verify(converted, tmp_path, tf, case, words):
    raw, manifest, clean = converted
    out = str(tmp_path / "out")
    shutil.copytree(clean, out)
    first, second = sorted(manifest["train"])[:2]
    labels = {}

    def change(name, label, synset):
        labels.setdefault(synset, label)
        if case == "all+1":
            return label + 1, synset
        if case == "one-val-record-other-label" and name == "ILSVRC2012_val_00000001.JPEG":
            return label + 1, synset
        if case == "label-1001" and label == max(labels.values()):
            return 1001, synset
        if case == "unknown-synset" and synset == first:
            return label, "n99999999"
        if case == "swap-two-classes" and synset in (first, second):
            return label, second if synset == first else first
        return label, synset
    tamper(out, tf, change)
    r = _verify_in_process(out)
    one_line_error(r, "verify.sh", "problem")
    problems = [l for l in r.stderr.splitlines() if ": problem: " in l]
    assert problems and all(w in " ".join(problems) for w in words), r.stderr


def test_sample_labels_are_the_standard_ones_when_the_label_file_has_all_1000(
        sample_release, tmp_path, tf):
    """With the shipped 50,000-line label file (the real release) the union of synsets
    is the 1000, so every label equals the synset's ILSVRC2012 label."""
    from contract_helpers import read_records
    raw, _ = sample_release
    out = str(tmp_path / "out")
    r = build(raw, out, "--labels", data.VAL_LABELS_FILE)
    assert r.returncode == 0, r.stderr
    got = read_records(shard_files(out), tf)
    assert got and all(label == official_label(s) for _, label, s in got)
