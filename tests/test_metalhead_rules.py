"""Issue 15 point 6: the Julia readers' path and label rules on a prepared OUT, in Python
(metalhead/metalhead_rules.py, always) and in Julia (metalhead/check_layout.jl, when
`julia` is on PATH): the same checks, with the same output line for line."""
import os
import shutil
import subprocess
import sys

import pytest

from test_metalhead_prepare import LAYOUTS, SYNSETS, jpeg, prepare

import metalhead_rules  # noqa: E402  (metalhead/ is on sys.path through test_metalhead_prepare)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLS = metalhead_rules.CLS
JL = os.path.join(REPO, "metalhead", "check_layout.jl")
JULIA = os.environ.get("JULIA") or shutil.which("julia")
SMALL = ["--val-size", "6", "--test-size", "2"]  # the miniature's "full" sizes


def _out(tmp_path, layout):
    out = str(tmp_path / ("out-" + layout))
    prepare.unpack(LAYOUTS[layout](tmp_path), out)
    return out


def _python(out, args=()):
    lines = []
    code = metalhead_rules.report(metalhead_rules.check(out, *_sizes(args)), lines.append)
    return code, "".join(lines)


def _sizes(args):
    args = list(args)
    val = int(args[args.index("--val-size") + 1]) if "--val-size" in args else 50000
    test = int(args[args.index("--test-size") + 1]) if "--test-size" in args else 100000
    return val, test


def _break(out, how):
    """Damage OUT one way; return the check that must fail."""
    train, val = os.path.join(out, *CLS.split("/"), "train"), os.path.join(out, *CLS.split("/"), "val")
    mapping = os.path.join(out, "LOC_synset_mapping.txt")
    if how == "misfiled":
        with open(os.path.join(train, SYNSETS[0], "%s_7.JPEG" % SYNSETS[1]), "wb") as f:
            f.write(jpeg(7))
        return "train folders"
    if how == "unsorted":
        lines = open(mapping).read().splitlines()
        lines[0], lines[1] = lines[1], lines[0]
        open(mapping, "w").write("\n".join(lines) + "\n")
        return "mapping order"
    if how == "tab":
        text = open(mapping).read()
        open(mapping, "w").write(text.replace(" ", "\t", 1))
        return "mapping columns"
    if how == "foreign":
        with open(os.path.join(out, "LOC_val_solution.csv"), "a") as f:
            f.write("ILSVRC2012_val_00000009,n99999999 1 2 3 4\n")
        return "val labels"
    if how == "stray":
        open(os.path.join(val, "ILSVRC2012_val_00000042.JPEG"), "wb").close()
        return "val names"
    if how == "unlabelled-gone":
        os.remove(os.path.join(val, "ILSVRC2012_val_00000002.JPEG"))
        return "val files"
    if how == "train-row":
        with open(os.path.join(out, "LOC_train_solution.csv"), "a") as f:
            f.write("%s_5,%s 1 2 3 4\n" % (SYNSETS[1], SYNSETS[1]))
        return "train solution"
    if how == "no-mapping":
        os.remove(mapping)
        return "mapping columns"
    raise AssertionError(how)


BREAKS = ["misfiled", "unsorted", "tab", "foreign", "stray", "unlabelled-gone",
          "train-row", "no-mapping"]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_python_rules_on_a_partial_tree(tmp_path, layout):
    code, text = _python(_out(tmp_path, layout))
    assert code == 1
    lines = text.splitlines()
    assert lines[-1] == "9 passed, 2 failed"
    assert [line.split(":")[0] for line in lines if line.startswith("FAIL")] == \
        ["FAIL val size", "FAIL test size"]
    assert "FAIL val size: 49994 of 50000 images missing (Metalhead's ValData has 50000), " \
        "first %s/val/ILSVRC2012_val_00000007.JPEG" % CLS in lines


def test_python_rules_pass_on_the_scaled_full_tree(tmp_path):
    code, text = _python(_out(tmp_path, "direct"), SMALL)
    assert code == 0, text
    assert text.splitlines()[-1] == "11 passed, 0 failed"


@pytest.mark.parametrize("how", BREAKS)
def test_python_rules_catch(tmp_path, how):
    out = _out(tmp_path, "direct")
    name = _break(out, how)
    code, text = _python(out, SMALL)
    assert code == 1
    assert [line for line in text.splitlines() if line.startswith("FAIL")][0].startswith(
        "FAIL %s: " % name), text


def test_python_rules_command_line(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(REPO, "metalhead", "metalhead_rules.py"),
                        _out(tmp_path, "direct")] + SMALL, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.endswith("11 passed, 0 failed\n"), r.stdout + r.stderr


needs_julia = pytest.mark.skipif(
    not JULIA, reason="julia is not on PATH (nor $JULIA): metalhead/check_layout.jl needs "
    "Julia >= 1.5; the same rules are checked in Python by the test_python_rules_* tests")


def _julia(out, args=()):
    r = subprocess.run([JULIA, "--startup-file=no", JL, out] + list(args),
                       capture_output=True, text=True, timeout=300)
    assert not r.stderr.strip(), r.stderr
    return r.returncode, r.stdout


@needs_julia
def test_julia_check_equals_python_rules(tmp_path):
    """Every tree, each damage and both size settings: check_layout.jl prints what
    metalhead_rules.py prints, and exits the same way (one julia process per tree)."""
    trees = [(_out(tmp_path / layout, layout), ()) for layout in sorted(LAYOUTS)
             for _ in [os.makedirs(tmp_path / layout)]]
    for how in BREAKS:
        os.makedirs(tmp_path / how)
        out = _out(tmp_path / how, "direct")
        _break(out, how)
        trees.append((out, SMALL))
    trees.append((trees[0][0], SMALL))
    for out, args in trees:
        assert _julia(out, args) == _python(out, args), (out, args)


@needs_julia
def test_julia_usage_error():
    r = subprocess.run([JULIA, "--startup-file=no", JL], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "usage: julia check_layout.jl OUT" in r.stderr
