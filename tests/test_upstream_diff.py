"""patches/upstream-diff against a local git repository standing in for upstream."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "patches" / "upstream-diff"
NAME = "example/upstream"
PATH = "tools/convert.py"

OLD = ["line %d of the old file" % i for i in range(1, 31)]
NEW = list(OLD)
NEW[9] = "line 10, rewritten upstream"          # old line 10 changes
NEW[19:19] = ["an inserted line", "and another"]  # two lines inserted before old 20
del NEW[26]                                       # old line 25 is deleted


def git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
         "-c", "init.defaultBranch=main", *args],
        cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def record(rid, line, commit):
    return (f"id: {rid}\nupstream: {NAME} {PATH} @ {commit} : {line}\n"
            "breaks: b\nport: p\nwhere: TODO\ntest: TODO\n\n")


@pytest.fixture
def world(tmp_path):
    up = tmp_path / "upstream"
    (up / "tools").mkdir(parents=True)
    git(up, "init", "-q")
    (up / PATH).write_text("\n".join(OLD) + "\n")
    git(up, "add", PATH)
    git(up, "commit", "-q", "-m", "first")
    c1 = git(up, "rev-parse", "HEAD")
    (up / PATH).write_text("\n".join(NEW) + "\n")
    git(up, "commit", "-q", "-am", "second")
    c2 = git(up, "rev-parse", "HEAD")

    lock = tmp_path / "upstream.lock"
    lock.write_text(f"# test lock\n[convert.py]\nrepo = {NAME}\npath = {PATH}\n"
                    f"commit = {c1}\nspec = TEST\n")
    recs = tmp_path / "records"
    recs.mkdir()
    (recs / "convert.py.patch").write_text(
        record("UP-changed", 10, c1) + record("UP-near", 8, c1)
        + record("UP-untouched", 2, c1) + record("UP-moved", 29, c1)
        + record("UP-deleted", 25, c1) + record("UP-beyond", 99, c1)
        + record("UP-unknown", "?", c1) + record("UP-elsewhere", 3, "abcdef1"))

    def run(*extra, url=str(up)):
        return subprocess.run(
            [sys.executable, str(TOOL), "--lock", str(lock), "--records-dir", str(recs),
             "--cache-dir", str(tmp_path / "cache"), "--repo-url", f"{NAME}={url}", *extra],
            capture_output=True, text=True)

    return {"run": run, "c1": c1, "c2": c2, "lock": lock, "up": up}


def flagged(stdout):
    """{record id: kind} from the tool's record lines."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].startswith("convert.py.patch:"):
            out[parts[2]] = parts[0]
    return out


def test_prints_upstream_diff_and_flags_the_right_records(world):
    res = world["run"]()
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"--- a/{PATH}" in out and f"+++ b/{PATH}" in out
    assert "-line 10 of the old file" in out and "+line 10, rewritten upstream" in out
    assert "+an inserted line" in out and "-line 25 of the old file" in out
    assert flagged(out) == {
        "UP-changed": "CHANGED", "UP-deleted": "CHANGED",
        "UP-near": "NEAR", "UP-moved": "MOVED", "UP-beyond": "OUT-OF-RANGE",
        "UP-unknown": "UNLOCATED", "UP-elsewhere": "OTHER-PIN"}
    assert "line 29 is unchanged but now starts at line 30" in out
    assert "1 of 1 upstream files differ" in out
    assert world["c1"] in world["lock"].read_text()     # no --update-pin, no rewrite


def test_update_pin_moves_the_pin_and_then_nothing_differs(world):
    res = world["run"]("--update-pin")
    assert res.returncode == 0, res.stderr
    assert "pin moved: convert.py" in res.stdout
    text = world["lock"].read_text()
    assert f"commit = {world['c2']}" in text and world["c1"] not in text
    assert text.startswith("# test lock")

    again = world["run"]()
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout and "0 of 1 upstream files differ" in again.stdout


def test_ref_option_compares_against_the_given_ref(world):
    res = world["run"]("--ref", world["c1"])
    assert res.returncode == 0, res.stderr
    assert "unchanged" in res.stdout and not flagged(res.stdout)


def test_fetch_failure_is_one_clear_line_and_nonzero(world, tmp_path):
    res = world["run"](url=str(tmp_path / "no-such-repo"))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("upstream-diff: cannot fetch " + NAME)


def test_unknown_entry_is_a_usage_error(world):
    res = world["run"]("--only", "nope.py")
    assert res.returncode == 2 and "nope.py" in res.stderr
