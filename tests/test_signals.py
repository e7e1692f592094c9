"""A run that is stopped leaves nothing running: SIGTERM (what Slurm, Kubernetes and
Batch send first) ends it like Ctrl-C, with one line and exit status 143; kill -9 of
the main process takes its workers (and so the multiprocessing resource tracker) with
it; Ctrl-C in a terminal prints the one line only, no worker traceback."""

import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, generated_release


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    # big enough that --check decode keeps two workers busy for several seconds even
    # on a quiet machine (~1,000 images/s on 2 cores)
    return generated_release(tmp_path_factory, "signals-release", classes=20,
                             per_class=200, val=200, seed=5)


def _session(sid):
    """Live processes of session `sid` (the run and everything it started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        state, _, _, session = stat[stat.rindex(")") + 2:].split()[:4]
        if int(session) == sid and state != "Z":
            pids.append(int(entry))
    return pids


def _start(release, out):
    """build.sh in a session of its own, once its two workers are running."""
    proc = subprocess.Popen([os.path.join(REPO, "build.sh"), release, "-o", out, "-j",
                             "2", "--check", "decode"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_session(proc.pid)) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    assert len(_session(proc.pid)) >= 3, "the workers never started"
    train = os.path.join(out, "train")
    while time.monotonic() < deadline and proc.poll() is None and not any(
            not n.startswith(".") for n in _names(train)):
        time.sleep(0.05)                 # into the conversion: a first shard is kept
    assert proc.poll() is None, "the run ended before it could be stopped"
    return proc


def _names(directory):
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


@pytest.fixture
def started():
    """Start runs with _start; whatever of them is still alive at the end is killed,
    so that a failing test leaves no process behind either."""
    procs = []

    def start(release, out):
        procs.append(_start(release, out))
        return procs[-1]
    yield start
    for proc in procs:
        for pid in _session(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.kill()
        proc.communicate()


def _gone(sid, timeout=10):
    deadline = time.monotonic() + timeout
    while _session(sid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _session(sid)


def test_sigterm_ends_the_run_with_one_line_and_no_process_left(release, tmp_path, started):
    proc = started(release, str(tmp_path / "out"))
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert last == ("build.sh: terminated (SIGTERM); finished shards are kept, rerun "
                    "the same command to resume."), err
    assert "Traceback" not in err
    assert _gone(proc.pid) == []


def test_kill_9_of_the_main_process_takes_its_workers_along(release, tmp_path, started):
    proc = started(release, str(tmp_path / "out"))
    workers = [p for p in _session(proc.pid) if p != proc.pid]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert workers and _gone(proc.pid) == []


def test_ctrl_c_prints_the_one_line_only(release, tmp_path, started):
    proc = started(release, str(tmp_path / "out"))
    os.killpg(proc.pid, signal.SIGINT)   # a terminal's Ctrl-C reaches the whole group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("build.sh: interrupted;"), err
    assert "Traceback" not in err and "Process SpawnProcess" not in err, err
    assert _gone(proc.pid) == []
