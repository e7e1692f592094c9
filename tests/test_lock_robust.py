"""A shared output directory against a hostile user and a real cluster: a run lock
that deleting a file cannot break, a check before every rename that the directory is
still this run's plan, owners told apart on machines with one host name, and nothing
left behind but shards, plan records and the reader files asked for."""

import fcntl
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, generated_release, kill_after_shards, run_cmd, \
    wait_for_shards
from ilsvrc import fsutil, plan, pool
from ilsvrc.formats import official, registry
from ilsvrc.verify.inventory import inventory
from ilsvrc.write import destination, lock, worker
from ilsvrc.write.finisher import Finisher


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return generated_release(tmp_path_factory, "lock-release", classes=6, per_class=12,
                             val=12, seed=7)


def _build(release, out, *extra):
    return [sys.executable, "-m", "ilsvrc.cli.build", release, "-o", out, "-j", "1"] + \
        list(extra)


def _env():
    return dict(os.environ, PYTHONPATH=REPO)


def _split(out_dir, prefix="train", n=4):
    return plan.Split(prefix, out_dir, [(k, k + 1) for k in range(n)],
                      lambda j: plan.PlannedImage("x", 0, 10, "x", "x", {}), n)


def _lock_files(d):
    return [n for n in os.listdir(d) if n.startswith(".ilsvrc-") and n.endswith(".lock")]


# A run of this package in another process: it claims `d` (a task, so that a second
# one may share it), writes a partial file of shard `shard`, prints its name, host and
# pid, then removes orphaned partial files each time it reads a line (and writes its
# own again: a starting run removes its own process's old ones too).
HOLDER = r"""
import os, sys
sys.path.insert(0, %r)
from ilsvrc import fsutil
from ilsvrc.write import lock
d, shard, shared = sys.argv[1], sys.argv[2], sys.argv[3] == "task"
c = lock.Claim([d], shared, "held by a test")
c.ready()
p = fsutil.partial_path(os.path.join(d, shard))
with open(p, "wb") as f:
    f.write(b"half a shard")
print(os.path.basename(p), fsutil.host(), os.getpid(), flush=True)
for line in sys.stdin:
    kept = lock.remove_orphans(d, "train")
    with open(p, "wb") as f:            # its own, removed as a starting run does
        f.write(b"half a shard")
    print(kept, flush=True)
""" % REPO


def _holder(d, shard, shared="task", wrap=()):
    proc = subprocess.Popen(list(wrap) + [sys.executable, "-c", HOLDER, d, shard, shared],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    assert len(line) == 3, "the holder did not start"
    return proc, line[0], line[1], int(line[2])


def _ask(proc):
    """Have a holder remove orphaned partial files; its count of live ones kept."""
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def _end(*procs):
    for proc in procs:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- the lock

def test_deleting_every_lock_file_does_not_let_another_run_in(tmp_path):
    d = str(tmp_path)
    proc, _, _, pid = _holder(d, "train-00001-of-00004", "ordinary")
    try:
        for name in os.listdir(d):
            if name.endswith(".lock"):
                os.remove(os.path.join(d, name))     # what a hostile user may do
        for shared in (False, True):
            with pytest.raises(lock.InUse, match="being written by another run"):
                lock.Claim([d], shared, "a second run")
        assert lock.busy(d)
    finally:
        _end(proc)
    assert lock.busy(d) is None
    lock.Claim([d], False, "after it").release()
    assert _lock_files(d) == []


def test_a_run_of_another_plan_is_refused_after_the_lock_file_is_deleted(
        release, tmp_path):
    """The reported case: a run is live, its lock file is deleted, a run of another
    plan (other validation labels) starts on the same directory."""
    out = str(tmp_path / "out")
    other_labels = str(tmp_path / "labels.txt")
    lines = open(os.path.join(release, "synset_labels.txt")).read().split("\n")
    lines[0], lines[1] = lines[1], lines[0]
    assert lines[0] != lines[1]
    with open(other_labels, "w") as f:
        f.write("\n".join(lines))
    first = subprocess.Popen(_build(release, out), cwd=REPO, env=_env(),
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for_shards(first, os.path.join(out, "train"), 1)
        os.killpg(first.pid, signal.SIGSTOP)       # it holds its locks, stopped
        for sub in ("train", "validation"):
            for name in os.listdir(os.path.join(out, sub)):
                if name.endswith(".lock"):
                    os.remove(os.path.join(out, sub, name))
        second = run_cmd(_build(release, out, "--labels", other_labels))
        os.killpg(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert second.returncode != 0
    assert "is being written by another run" in second.stderr.strip().splitlines()[-1]
    assert first.returncode == 0, err


def test_a_rename_into_a_directory_taken_over_by_another_plan_stops_the_run(tmp_path):
    d = str(tmp_path)
    split = _split(d)
    dest = destination.at(d)
    assert dest.prepare(split, "plan-P") == set()
    state = os.path.join(d, ".train-of-00004.plan")
    # another developer's extra lines after the first one do not matter
    with open(state, "a") as f:
        f.write("a later line\n")
    mine = [split.path(k) for k in range(3)]
    for path in mine:
        with open(dest.target(path, "plan-P").tmp, "wb") as f:
            f.write(b"this run's shard")
    fin = Finisher()
    dest.finish(fin, mine[0])
    fin.close()
    assert open(mine[0], "rb").read() == b"this run's shard"
    # another run (on another machine, where this run's lock does not hold) takes the
    # directory over: its plan record, its finished shard
    with open(state, "w") as f:
        f.write("plan-Q\n")
    with open(mine[1], "wb") as f:
        f.write(b"the other run's shard")
    fin = Finisher()
    with pytest.raises(lock.TakenOver) as err:
        dest.finish(fin, mine[1])
        dest.finish(fin, mine[2])
        fin.close()
    fin.close(check=False)
    msg = str(err.value)
    assert msg.startswith(d + " was taken over by another run/plan: ") and "\n" not in msg
    assert "this run stops, nothing of the other run was touched" in msg
    assert open(mine[1], "rb").read() == b"the other run's shard"
    assert open(state).read() == "plan-Q\n"
    assert not os.path.exists(mine[2])
    assert [n for n in os.listdir(d) if n.endswith(".partial")] == []


class _TakeOver:
    """A worker pool that lets another plan take the output over after the first
    shard of a conversion is written (what a run of another plan on another machine
    can do where the run lock does not reach)."""

    def __init__(self, runner, out):
        self.runner, self.out, self.seen = runner, out, None

    def run(self, fn, jobs, **batching):
        first = None
        for i, (job, result) in enumerate(self.runner.run(fn, jobs, **batching)):
            if fn is worker.write_shard and i == 0:
                first = job.path
            if fn is worker.write_shard and i == 1:
                deadline = time.monotonic() + 60
                while not os.path.exists(first) and time.monotonic() < deadline:
                    time.sleep(0.01)          # the first shard is final: no race
                assert os.path.exists(first)
                for sub in ("train", "validation"):
                    for name in os.listdir(os.path.join(self.out, sub)):
                        if name.endswith(".plan"):
                            with open(os.path.join(self.out, sub, name), "w") as f:
                                f.write("0" * 64 + "\n")
                self.seen = _files(self.out)
            yield job, result


def _files(out):
    """The files under `out` but this run's own lock, owner and partial files."""
    found = {}
    for root, _, names in os.walk(out):
        for name in names:
            if name.startswith(".ilsvrc-") or fsutil.run_tag() in name:
                continue
            with open(os.path.join(root, name), "rb") as f:
                found[os.path.relpath(os.path.join(root, name), out)] = f.read()
    return found


def test_a_conversion_whose_directory_is_taken_over_stops_and_touches_nothing(
        release, tmp_path):
    out = str(tmp_path / "out")
    with pool.Pool(0) as runner:
        taker = _TakeOver(runner, out)
        with pytest.raises(lock.TakenOver, match="was taken over by another run/plan"):
            official.convert(release, out, taker, do_verify=False, log=io.StringIO())
    assert taker.seen is not None
    assert _files(out) == taker.seen     # not one file added, changed or removed


# --------------------------------------------------------------------------- owners

def _uts_pid_namespaces():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "--uts", "--pid", "--fork", "--mount-proc", "true"],
                       capture_output=True)
    return r.returncode == 0


def test_two_machines_with_one_host_name_keep_each_others_partial_files(tmp_path):
    """Two containers (own host name and pid namespaces) both called `twin`, whose
    runs are both pid 1, write one directory as tasks of one plan."""
    if not _uts_pid_namespaces():
        pytest.skip("needs root and unshare --uts --pid (util-linux) to give two "
                    "processes one host name and one pid; the next test simulates it")
    d = str(tmp_path)
    wrap = ["unshare", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
            "sh", "-c",
            'hostname twin && exec "$0" "$@"']
    a, a_name, a_host, a_pid = _holder(d, "train-00001-of-00004", wrap=wrap)
    try:
        b, b_name, b_host, b_pid = _holder(d, "train-00002-of-00004", wrap=wrap)
        try:
            assert (a_host, a_pid) == (b_host, b_pid) == ("twin", 1)
            assert _ask(b) == 1
            assert _ask(a) == 1
            assert {a_name, b_name} <= set(os.listdir(d))
        finally:
            _end(b)
        deadline = time.monotonic() + 30        # b's run dies with its namespace
        while _ask(a) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ask(a) == 0                     # b is gone: its partial file goes
        assert b_name not in os.listdir(d) and a_name in os.listdir(d)
    finally:
        _end(a)


def test_a_run_with_the_same_host_name_and_pid_keeps_a_live_runs_partial_file(
        tmp_path, monkeypatch):
    """The same as above inside one machine: this process poses as a second machine
    whose run has the other run's host name and pid."""
    d = str(tmp_path)
    a, a_name, a_host, a_pid = _holder(d, "train-00001-of-00004")
    try:
        monkeypatch.setattr(fsutil, "host", lambda: a_host)
        monkeypatch.setattr(os, "getpid", lambda: a_pid)
        with lock.Claim([d], True, "task 1 of 2") as b:
            b.ready()
            assert lock.remove_orphans(d, "train") == 1
            mine = fsutil.partial_path(os.path.join(d, "train-00002-of-00004"))
            open(mine, "wb").close()
            assert fsutil.parse_partial(os.path.basename(mine))[1:] == (a_host, a_pid)
            monkeypatch.undo()
            assert _ask(a) == 1
            assert {a_name, os.path.basename(mine)} <= set(os.listdir(d))
        assert _ask(a) == 0
        assert os.listdir(d).count(a_name) == 1
    finally:
        monkeypatch.undo()
        _end(a)


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_pid_counts_only_on_the_same_machine(tmp_path):
    """An owner file still locked (a lock inherited by a process that outlived the
    run) whose pid is dead: dead on this machine, alive when another machine of the
    same host name wrote it."""
    d = str(tmp_path)
    pid = _dead_pid()
    held = []
    for token, machine in (("r000000000001", lock._machine()),
                           ("r000000000002", "%s boot another-boot pid:[1]"
                            % fsutil.host())):
        tag = "%s.%d.%s" % (fsutil.host(), pid, token)
        fd = os.open(os.path.join(d, lock.OWNER_LOCK % tag), os.O_RDWR | os.O_CREAT)
        os.write(fd, ("x pid %d\nmachine %s\n" % (pid, machine)).encode())
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.append(fd)
        open(fsutil.partial_path(os.path.join(d, "train-00001-of-00004"), tag),
             "wb").close()
    try:
        assert lock.remove_orphans(d, "train") == 1
    finally:
        for fd in held:
            os.close(fd)
    left = [n for n in os.listdir(d) if n.endswith(".partial")]
    assert len(left) == 1 and "r000000000002" in left[0]


def test_names_of_earlier_versions_and_odd_names(tmp_path):
    d = str(tmp_path)

    def touch(name):
        open(os.path.join(d, name), "wb").close()
        return name

    live_old = touch(".train-00001-of-00004.old.host.42.partial")
    fd = os.open(os.path.join(d, lock.OWNER_LOCK % "old.host.42"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)            # a live run of an earlier version
    gone = [touch(".train-00002-of-00004.old.host.43.partial"),
            touch(".train-00003-of-00004.partial"),
            touch(".train-00003-of-00004.odd.partial"),
            touch(".train-00000-of-00004.h.12x.partial"),
            touch(".train-of-00004.plan.%s.partial" % fsutil.run_tag())]
    other = [touch(".ilsvrc-source.index.h.1.r0123456789ab.partial"),
             touch(".validation-00001-of-00004.odd.partial")]
    try:
        assert lock.remove_orphans(d, "train") == 1
    finally:
        os.close(fd)
    left = set(os.listdir(d))
    assert live_old in left and set(other) <= left and not set(gone) & left
    # verify says the truth about each partial file left
    fmt = registry.FORMATS["slim"]
    _, _, warnings = inventory(fmt, d)
    said = {re.sub(r":.*", "", w.replace(d + "/", "")): w for w in warnings}
    assert "next build into this directory removes it" in said[live_old]
    assert "next build into this directory removes it" in said[other[1]]
    assert "no build removes it" in said[other[0]]


# --------------------------------------------------------------------------- litter

SHARD = re.compile(r"(train|validation)-\d{5}-of-\d{5}")


def _litter(out, tfds=False):
    """Files under `out` other than shards, plan records, the run report and the
    DALI index files and TFDS metadata asked for."""
    extra = []
    for root, dirs, names in os.walk(out):
        rel = os.path.relpath(root, out)
        for name in names:
            if rel in ("train", "validation") and (
                    SHARD.fullmatch(name) or name == ".%s-of-%05d.plan" % (
                        rel, 1024 if rel == "train" else 128)):
                continue
            if rel.startswith("dali-index") and SHARD.fullmatch(name[:-4]) and \
                    name.endswith(".idx"):
                continue
            if tfds and rel == "." and (name in ("dataset_info.json", "features.json")
                                        or name.endswith(".labels.txt")):
                continue
            if rel == "." and name in ("report.json", "report.html"):
                continue              # the run report a person opens (docs/report.md)
            extra.append(os.path.join(rel, name))
    return sorted(extra)


def test_a_finished_run_leaves_nothing_but_its_output(release, tmp_path):
    out = str(tmp_path / "out")
    r = run_cmd(_build(release, out, "--dali-index", "--tfds-metadata"))
    assert r.returncode == 0, r.stderr
    assert _litter(out, tfds=True) == []
    assert len(os.listdir(os.path.join(out, "dali-index", "validation"))) == 128


def test_a_killed_run_and_its_rerun_leave_nothing_but_the_output(release, tmp_path):
    out = str(tmp_path / "out")
    cmd = _build(release, out, "--dali-index")
    kill_after_shards(cmd, os.path.join(out, "train"), 30, _env())
    assert _litter(out), "the killed run left nothing to clean up"
    r = run_cmd(cmd)
    assert r.returncode == 0, r.stderr
    assert "shards already complete" in r.stderr
    assert _litter(out) == []


def test_tasks_leave_nothing_but_the_output(release, tmp_path):
    """Task 0 runs beside a live task (which keeps its partial files) and removes a
    dead task's partial index file; task 1, alone, leaves nothing but the output."""
    out = str(tmp_path / "out")
    index_dir = os.path.join(out, "dali-index", "train")
    os.makedirs(index_dir)
    live, shard_partial, _, _ = _holder(os.path.join(out, "train"),
                                        "train-00001-of-01024")
    tag = fsutil.partial_owner(shard_partial).tag
    live_index = os.path.basename(fsutil.partial_path(
        os.path.join(index_dir, "train-00001-of-01024.idx"), tag))
    dead_index = os.path.basename(fsutil.partial_path(
        os.path.join(index_dir, "train-00002-of-01024.idx"), "gone.1.r000000000009"))
    for name in (live_index, dead_index):
        open(os.path.join(index_dir, name), "wb").close()
    try:
        r = run_cmd(_build(release, out, "--task-index", "0", "--task-count", "2",
                           "--dali-index"))
        assert r.returncode == 0, r.stderr
        assert live_index in os.listdir(index_dir)
        assert dead_index not in os.listdir(index_dir)
        assert shard_partial in os.listdir(os.path.join(out, "train"))
    finally:
        _end(live)
    r = run_cmd(_build(release, out, "--task-index", "1", "--task-count", "2",
                       "--dali-index"))
    assert r.returncode == 0, r.stderr
    assert _litter(out) == []
