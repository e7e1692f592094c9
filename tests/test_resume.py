"""Resume: kill -9 in the middle, rerun, same bytes as an uninterrupted run."""

import io
import os
import shutil
import sys
import time

import pytest

from conftest import REPO, generated_release, kill_after_shards, run_cmd
from ilsvrc import fsutil, pool
from ilsvrc.formats import official
from ilsvrc.write.finisher import Finisher
from ilsvrc.errors import UserError


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return generated_release(tmp_path_factory, "resume-release", classes=8, per_class=40,
                             val=40, seed=4)


def _shards(out):
    found = {}
    for sub in ("train", "validation"):
        for name in sorted(os.listdir(os.path.join(out, sub))):
            if not name.startswith("."):
                with open(os.path.join(out, sub, name), "rb") as f:
                    found[sub + "/" + name] = f.read()
    return found


def _hidden(out):
    return sorted(n for sub in ("train", "validation")
                  for n in os.listdir(os.path.join(out, sub)) if n.startswith("."))


@pytest.fixture(scope="module")
def clean_run(release, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("clean") / "out")
    with pool.Pool(0) as runner:
        official.convert(release, out, runner, do_verify=False)
    return _shards(out)


def _cmd(release, out):
    return [sys.executable, "-m", "ilsvrc.cli.build", release, "-o", out, "-j", "1"]


def test_kill_9_then_rerun_finishes_only_the_rest(release, clean_run, tmp_path):
    out = str(tmp_path / "out")
    kill_after_shards(_cmd(release, out), os.path.join(out, "train"), 20,
                      dict(os.environ, PYTHONPATH=REPO))
    killed = _shards(out)
    assert 20 <= len(killed) < len(clean_run)
    for name, data in killed.items():         # finished shards are already final
        assert data == clean_run[name]
    # the killed run's partial files are named after it (host, pid): the rerun
    # removes them, as it does an unowned one of an earlier version left long ago
    stale = os.path.join(out, "validation", ".validation-00127-of-00128.partial")
    with open(stale, "wb") as f:
        f.write(b"half a shard")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))

    r = run_cmd(_cmd(release, out))
    assert r.returncode == 0, r.stderr
    assert "%d shards already complete" % len(killed) in r.stderr
    assert _shards(out) == clean_run
    assert [n for n in _hidden(out) if n.endswith(".partial")] == []


def test_same_plan_skips_everything_changed_plan_refuses_and_deletes_nothing(
        release, clean_run, tmp_path):
    out = str(tmp_path / "out")
    labels = os.path.join(release, official.LABEL_FILE_NAME)
    with open(labels) as f:
        lines = f.read().split()

    def label_file(name, synsets):
        path = str(tmp_path / name)
        with open(path, "w") as f:
            f.write("".join(s + "\n" for s in synsets))
        return path

    with pool.Pool(0) as runner:
        official.convert(release, out, runner, do_verify=False)
        stats = _convert_stats(release, out, runner)
        assert stats["shards"] == 0 and stats["images"] == 0
        assert _shards(out) == clean_run
        # other validation labels: validation is another plan, which must not
        # replace the finished shards; the message names the directory and the fix
        rotated = label_file("rotated.txt", lines[1:] + lines[:1])
        with pytest.raises(UserError) as err:
            _convert_stats(release, out, runner, rotated)
        msg = str(err.value)
        assert os.path.join(out, "validation") in msg and "another plan" in msg
        assert "Nothing was deleted" in msg and "rm " in msg
        assert _shards(out) == clean_run
        # once the user removed them, the other plan is written
        for name in os.listdir(os.path.join(out, "validation")):
            if name.startswith("validation-"):
                os.remove(os.path.join(out, "validation", name))
        stats = _convert_stats(release, out, runner, rotated)
        assert stats["shards"] == official.VAL_SHARDS
        now = _shards(out)
        assert {n: d for n, d in now.items() if n.startswith("train/")} == \
            {n: d for n, d in clean_run.items() if n.startswith("train/")}
        assert now != clean_run


def test_moving_the_input_directory_keeps_finished_shards(release, clean_run, tmp_path):
    first = str(tmp_path / "first")
    shutil.copytree(release, first)
    out = str(tmp_path / "out")
    with pool.Pool(0) as runner:
        _convert_stats(first, out, runner)
        moved = str(tmp_path / "elsewhere" / "moved")
        os.makedirs(os.path.dirname(moved))
        os.rename(first, moved)
        stats = _convert_stats(moved, out, runner)
        assert stats["shards"] == 0 and stats["images"] == 0
        assert _shards(out) == clean_run
        # the same names with other bytes (another tar size) are a new plan: it
        # stops and deletes nothing; once the old shards are removed it writes them
        with open(os.path.join(moved, "ILSVRC2012_img_val.tar"), "ab") as f:
            f.write(bytes(10240))
        with pytest.raises(UserError, match="another plan"):
            _convert_stats(moved, out, runner)
        assert _shards(out) == clean_run
        for name in os.listdir(os.path.join(out, "validation")):
            if name.startswith("validation-"):
                os.remove(os.path.join(out, "validation", name))
        stats = _convert_stats(moved, out, runner)
        assert stats["shards"] == official.VAL_SHARDS
    assert _shards(out) == clean_run


def _convert_stats(release, out, runner, label_file=None):
    """Write totals of a conversion (no verify): shards and images written.  The
    made-up synsets of these label files are a custom class set (ilsvrc.contract)."""
    _, stats = official.convert(release, out, runner, do_verify=False,
                                label_file=label_file, log=io.StringIO(),
                                allow_custom=True)
    return stats


def test_main_process_never_imports_tensorflow(release, tmp_path):
    code = ("import sys\n"
            "from ilsvrc.cli import build as cli_build\n"
            "rc = cli_build.main([%r, '-o', %r, '-j', '1'])\n"
            "assert rc == 0, rc\n"
            "print('TF-IN-MAIN' if 'tensorflow' in sys.modules else 'NO-TF-IN-MAIN')\n"
            % (release, str(tmp_path / "out")))
    r = run_cmd([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "NO-TF-IN-MAIN"


def test_finisher_renames_after_flush_and_reports_errors(tmp_path):
    done = [str(tmp_path / ("s-%d" % k)) for k in range(3)]
    for path in done:
        with open(fsutil.partial_path(path), "wb") as f:
            f.write(b"records")
    fin = Finisher()
    for path in done:
        fin.add(path)
    fin.close()
    assert sorted(os.listdir(tmp_path)) == ["s-0", "s-1", "s-2"]
    # a partial that vanished (or a failed fsync) is an error naming the shard; the
    # shards queued after it are discarded, not renamed
    fin = Finisher()
    later = str(tmp_path / "t-1")
    open(fsutil.partial_path(later), "wb").close()
    with pytest.raises(UserError, match="t-0"):
        fin.add(str(tmp_path / "t-0"))
        fin.add(later)            # raises at once if the error is already known
        fin.close()
    fin.close(check=False)
    assert not os.path.exists(later)


def test_survey_hashes_exactly_the_repr_of_every_planned_image(tmp_path):
    """resume.survey puts the text together from remembered parts; the digest is
    the one of the plain definition (so plans recorded before keep resuming),
    whether images share their container and features or not, beyond the 4,096
    remembered."""
    import hashlib
    from ilsvrc import plan
    from ilsvrc.sources import containers
    from ilsvrc.write import resume
    tar = tmp_path / "a.tar"
    tar.write_bytes(b"x" * 100)
    shared_c = containers.Slices(str(tar))
    shared_f = {"image/class/label": ("int64", [3]), "image/class/synset": ("bytes", [b"n1"])}
    n = 9000

    def item(j):
        if j % 3 == 0:        # a loose file, its own features
            return plan.PlannedImage(containers.File(str(tmp_path / ("f%d" % j))), 0, -1,
                                     "w", "n1/f%d.JPEG" % j,
                                     {"image/class/label": ("int64", [j]),
                                      "b": ("float", [0.5, -0.0])})
        return plan.PlannedImage(shared_c, j * 7, j, "w", "n1/x'%d\".JPEG" % j, shared_f)

    split = plan.Split("train", str(tmp_path), plan.ceil_shards(n, 4), item, n)
    h = hashlib.sha256(repr((resume.STATE_VERSION, "header", "train", split.ranges)).encode())
    for j in range(n):
        it = item(j)
        h.update(repr((it.container.identity(), it.offset, it.size, it.relpath,
                       sorted(it.features.items()))).encode())
    assert resume.survey(split, "header")[0] == h.hexdigest()
