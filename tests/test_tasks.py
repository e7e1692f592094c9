"""Task mode and shared output directories: detection, partition, locks, and real
concurrent processes (three tasks at once, kill -9 and rerun, a second run refused,
another plan refused)."""

import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, kill_after_shards, wait_for_shards
from test_resume import _shards, clean_run, release  # noqa: F401  (fixtures)
from ilsvrc import fsutil, plan, pool, tasks
from ilsvrc.write import lock, resume
from ilsvrc.formats import official
from ilsvrc.errors import UsageError


# --------------------------------------------------------------------------- detect

@pytest.mark.parametrize("env, flags, want", [
    ({}, (None, None), None),
    ({}, (2, 4), (2, 4)),
    ({}, (0, 1), None),                                   # one task: an ordinary run
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}, (None, None), (1, 3)),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5",
      "SLURM_ARRAY_TASK_COUNT": "4"}, (None, None), (2, 4)),
    ({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_MIN": "10",
      "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, (None, None), (2, 3)),
    ({"JOB_COMPLETION_INDEX": "3", "ILSVRC_TASK_COUNT": "8"}, (None, None), (3, 8)),
    ({"JOB_COMPLETION_INDEX": "3"}, (None, 5), (3, 5)),
    ({"BATCH_TASK_INDEX": "0", "BATCH_TASK_COUNT": "2"}, (None, None), (0, 2)),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "4", "ILSVRC_TASK_COUNT": "6"}, (None, None), (4, 6)),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}, (2, 3), (2, 3)),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3",
      "ILSVRC_TASK_COUNT": "0"}, (None, None), None),     # detection off
])
def test_detect(env, flags, want):
    got = tasks.detect(flags[0], flags[1], env)
    assert (got and (got.index, got.count)) == (want and want) or (got is None and
                                                                    want is None)
    if got is not None:
        assert (got.index, got.count) == want and got.how


@pytest.mark.parametrize("env, flags, words", [
    ({"JOB_COMPLETION_INDEX": "1"}, (None, None), "ILSVRC_TASK_COUNT"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "1"}, (None, None), "ILSVRC_TASK_COUNT"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, (None, None), "SLURM_ARRAY_TASK_COUNT"),
    ({}, (1, None), "--task-count"),
    ({}, (3, 3), "outside 0..2"),
    ({}, (None, 4), "no task index"),
    ({"BATCH_TASK_INDEX": "x", "BATCH_TASK_COUNT": "2"}, (None, None), "whole number"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}, (None, 4),
     "SLURM_ARRAY_TASK_COUNT=3"),
])
def test_detect_refuses_incomplete_settings_in_one_line(env, flags, words):
    with pytest.raises(UsageError) as err:
        tasks.detect(flags[0], flags[1], env)
    assert words in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- partition

def test_partition_is_complete_disjoint_deterministic_and_fair():
    import random
    rng = random.Random(3)
    weights = [rng.randint(90, 160) * 10 ** 6 for _ in range(1024)] + \
        [rng.randint(40, 60) * 10 ** 6 for _ in range(128)] + [0] * 40
    for n in (1, 2, 3, 4, 7, 16):
        owner = tasks.partition(weights, n)
        assert owner == tasks.partition(list(weights), n)
        assert set(owner) == set(range(n))
        loads = [sum(w for w, t in zip(weights, owner) if t == k) for k in range(n)]
        assert max(loads) - min(loads) <= max(weights)
        empties = [owner[i] for i, w in enumerate(weights) if not w]
        counts = [owner.count(k) for k in range(n)]
        assert max(counts) - min(counts) <= 1 + len(empties) // n
    keys = list(range(len(weights)))
    task_sets = [tasks.owned(keys, weights, tasks.Task(k, 3, "t")) for k in range(3)]
    assert sorted(sum(task_sets, [])) == keys


def test_ranges_text():
    assert tasks.ranges_text([0, 1, 2, 3, 7, 9, 10]) == "0-3, 7, 9-10"
    assert tasks.ranges_text([]) == ""


# --------------------------------------------------------------------------- locks

def _split(out_dir, prefix="train", n=4):
    return plan.Split(prefix, out_dir, [(k, k + 1) for k in range(n)],
                      lambda j: plan.PlannedImage("x", 0, 10, "x", "x", {}), n)


def test_exclusive_run_refuses_a_second_and_a_task(tmp_path):
    d = str(tmp_path)
    with lock.Claim([d], False, "an ordinary run") as first:
        first.ready()
        for shared in (False, True):
            with pytest.raises(lock.InUse) as err:
                lock.Claim([d], shared, "second")
            msg = str(err.value)
            assert d in msg and "pid %d" % os.getpid() in msg and "\n" not in msg
        assert lock.busy(d)
    assert lock.busy(d) is None
    lock.Claim([d], False, "third").release()


def test_tasks_share_and_refuse_an_ordinary_run(tmp_path):
    d = str(tmp_path)
    a = lock.Claim([d], True, "task 0 of 2")
    assert a.alone[d]
    a.ready()
    b = lock.Claim([d], True, "task 1 of 2")
    assert not b.alone[d]
    b.ready()
    with pytest.raises(lock.InUse, match="task 0 of 2"):
        lock.Claim([d], False, "an ordinary run")
    a.release()
    b.release()
    lock.Claim([d], False, "an ordinary run").release()


def test_tasks_of_another_plan_are_refused_while_live(tmp_path):
    d = str(tmp_path)
    split = _split(d)
    a = lock.Claim([d], True, "task 0 of 2")
    assert resume.prepare_dir(split, "plan-P", a.alone[d]) == set()
    a.ready()
    b = lock.Claim([d], True, "task 1 of 2")
    with pytest.raises(lock.InUse, match="another plan"):
        resume.prepare_dir(split, "plan-Q", b.alone[d])
    assert resume.prepare_dir(split, "plan-P", b.alone[d]) == set()
    b.release()
    a.release()


def test_a_killed_holder_does_not_block(tmp_path):
    d = str(tmp_path)
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from ilsvrc.write import lock\n"
            "c = lock.Claim([%r], False, 'held'); c.ready()\n"
            "print('held', flush=True); time.sleep(60)\n" % (REPO, d))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(lock.InUse, match="pid %d" % proc.pid):
            lock.Claim([d], False, "next")
    finally:
        proc.kill()
        proc.wait()
    lock.Claim([d], False, "next").release()


def test_only_orphaned_partials_are_removed(tmp_path):
    d = str(tmp_path)
    me = fsutil.host()

    def touch(name):
        open(os.path.join(d, name), "wb").close()
        return name

    finished = touch("train-00000-of-00004")
    live_other = touch(".train-00001-of-00004.otherhost.42.partial")
    owner = os.path.join(d, lock.OWNER_LOCK % "otherhost.42")
    import fcntl
    fd = os.open(owner, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)                      # that run is alive
    dead_other = touch(".train-00002-of-00004.deadhost.7.partial")
    open(os.path.join(d, lock.OWNER_LOCK % "deadhost.7"), "wb").close()   # not locked
    no_owner_file = touch(".train-00003-of-00004.gonehost.9.partial")
    dead_here = touch(".train-00003-of-00004.%s.%d.partial" % (me, _dead_pid()))
    old_style = touch(".train-00001-of-00004.partial")
    other_prefix = touch(".validation-00001-of-00004.deadhost.7.partial")
    try:
        kept = lock.remove_orphans(d, "train")
    finally:
        os.close(fd)
    left = set(os.listdir(d))
    assert kept == 1
    assert {finished, live_other, other_prefix} <= left
    assert not {dead_other, no_owner_file, dead_here, old_style} & left
    assert lock.OWNER_LOCK % "deadhost.7" not in left
    assert lock.OWNER_LOCK % "otherhost.42" in left


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_partial_names_carry_host_and_pid(tmp_path):
    path = str(tmp_path / "train-00003-of-01024")
    name = os.path.basename(fsutil.partial_path(path))
    assert fsutil.parse_partial(name) == ("train-00003-of-01024", fsutil.host(), os.getpid())
    assert fsutil.parse_partial(".x.partial") == ("x", None, None)
    assert fsutil.parse_partial("x.partial") is None


# --------------------------------------------------------------------------- processes

def owned_names(release, task_index, count):
    """The shard paths (as in _shards) task `task_index` of `count` owns."""
    with pool.Pool(0) as runner:   # the plan build.sh makes (same label file rule)
        splits = official.plan_from_source(release, "/nowhere", runner, None)
    mine = tasks.owned_shards(splits, tasks.Task(task_index, count, "test"))
    return {"%s/%s" % (s.prefix, plan.shard_name(s.prefix, k, s.num_shards))
            for s, k in mine}


def _build(release, out, *extra):
    return [sys.executable, "-m", "ilsvrc.cli.build", release, "-o", out, "-j", "1"] + \
        list(extra)


ENV = dict(os.environ, PYTHONPATH=REPO)
for _v in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "BATCH_TASK_INDEX",
           "AWS_BATCH_JOB_ARRAY_INDEX", "ILSVRC_TASK_COUNT"):
    ENV.pop(_v, None)


def run_cmd(args, env_extra=None):
    """Run a command from the repository root without any scheduler variables of
    the environment the tests run in (plus `env_extra`)."""
    return subprocess.run(args, cwd=REPO, env=dict(ENV, **(env_extra or {})),
                          capture_output=True, text=True, timeout=900)


def test_three_concurrent_tasks_equal_one_run(release, clean_run, tmp_path):
    out = str(tmp_path / "out")
    r = run_cmd(_build(release, out, "--index-only"))
    assert r.returncode == 0, r.stderr
    procs = [subprocess.Popen(_build(release, out, "--task-count", "3"), cwd=REPO,
                              env=dict(ENV, SLURM_ARRAY_TASK_ID=str(k),
                                       SLURM_ARRAY_TASK_COUNT="3"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(3)]
    results = [p.communicate(timeout=600) for p in procs]
    for k, (p, (_, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 0, err
        assert "task %d of 3 (from SLURM_ARRAY_TASK_ID=%d" % (k, k) in err
        assert "index: read" in err            # no task walked the tars again
        assert "owns " in err
    r = run_cmd(["./verify.sh", "official", out, "--source", release, "-j", "1"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "exactly once" in r.stdout
    assert _shards(out) == clean_run
    hidden = [n for sub in ("train", "validation")
              for n in os.listdir(os.path.join(out, sub)) if n.startswith(".")]
    assert not [n for n in hidden if n.endswith(".partial") or "owner" in n]


def test_killed_task_rerun_writes_only_its_missing_shards(release, clean_run, tmp_path):
    out = str(tmp_path / "out")
    mine = owned_names(release, 1, 3)
    cmd = _build(release, out, "--task-index", "1", "--task-count", "3")
    kill_after_shards(cmd, os.path.join(out, "train"), 5, ENV)
    killed = _shards(out)
    assert 5 <= len(killed) < len(mine) and set(killed) <= mine
    r = run_cmd(cmd)
    assert r.returncode == 0, r.stderr
    assert "%d shards already complete" % len(killed) in r.stderr
    assert set(_shards(out)) == mine                   # its share, nothing else
    r = run_cmd(["./verify.sh", "official", out, "--source", release, "-j", "1",
                 "--task-index", "1", "--task-count", "3"])
    assert r.returncode == 1          # the other tasks' shards are not there yet
    assert "missing" in r.stderr
    for k in (0, 2):
        r = run_cmd(_build(release, out, "--task-index", str(k), "--task-count", "3"))
        assert r.returncode == 0, r.stderr
    assert _shards(out) == clean_run
    assert not [n for sub in ("train", "validation")
                for n in os.listdir(os.path.join(out, sub)) if n.endswith(".partial")]
    for k in range(3):
        r = run_cmd(["./verify.sh", "official", out, "--source", release, "-j", "1",
                     "--task-index", str(k), "--task-count", "3"])
        assert r.returncode == 0, r.stdout + r.stderr
        assert "this task's" in r.stdout


def test_second_ordinary_run_is_refused_and_the_first_finishes(release, clean_run,
                                                               tmp_path):
    out = str(tmp_path / "out")
    first = subprocess.Popen(_build(release, out), cwd=REPO, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    train = os.path.join(out, "train")
    wait_for_shards(first, train, 3)
    # held while the others try (its workers go on, its shards wait to be made final):
    # a run of a few hundred images may otherwise end before they have started
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = run_cmd(_build(release, out))
        task = run_cmd(_build(release, out, "--task-index", "0", "--task-count", "2"))
        still_running = first.poll() is None
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert still_running, "the first run ended before the second was refused"
    for r in (second, task):
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert "being written by another run" in lines[-1]
        assert "pid %d" % first.pid in lines[-1] and train in lines[-1]
        assert "Traceback" not in r.stderr
    assert _shards(out) == clean_run


def test_another_plan_on_a_finished_directory_deletes_nothing(release, clean_run,
                                                             tmp_path):
    out = str(tmp_path / "out")
    r = run_cmd(_build(release, out, "--no-verify"))
    assert r.returncode == 0, r.stderr
    before = {os.path.join(sub, n): os.stat(os.path.join(out, sub, n)).st_mtime_ns
              for sub in ("train", "validation") for n in os.listdir(os.path.join(out, sub))}
    with open(os.path.join(release, official.LABEL_FILE_NAME)) as f:
        lines = f.read().split()
    rotated = str(tmp_path / "rotated.txt")
    with open(rotated, "w") as f:
        f.write("".join(s + "\n" for s in lines[1:] + lines[:1]))
    for extra in ([], ["--task-index", "0", "--task-count", "2"]):
        r = run_cmd(_build(release, out, "--labels", rotated, *extra))
        assert r.returncode == 1
        last = r.stderr.strip().splitlines()[-1]
        assert os.path.join(out, "validation") in last and "another plan" in last
        assert "Nothing was deleted" in last and "Traceback" not in r.stderr
    after = {os.path.join(sub, n): os.stat(os.path.join(out, sub, n)).st_mtime_ns
             for sub in ("train", "validation") for n in os.listdir(os.path.join(out, sub))
             if "owner" not in n}
    assert {k: v for k, v in before.items() if not k.endswith(".lock")} == \
        {k: v for k, v in after.items() if not k.endswith(".lock")}
    assert _shards(out) == clean_run


def test_stale_index_stops_a_task_in_one_line(release, tmp_path):
    import shutil
    src = str(tmp_path / "src")
    shutil.copytree(release, src)
    out = str(tmp_path / "out")
    assert run_cmd(_build(src, out, "--index-only")).returncode == 0
    with open(os.path.join(src, "ILSVRC2012_img_val.tar"), "ab") as f:
        f.write(bytes(1024))
    r = run_cmd(_build(src, out, "--task-index", "0", "--task-count", "2"))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "is stale: " in last and "--index-only" in last
    assert "ILSVRC2012_img_val.tar" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(out, "train"))


# --------------------------------------------------------------------------- front ends

def test_imagenet_to_gcs_task_flags(release, clean_run, tmp_path):
    out = str(tmp_path / "out")
    base = [sys.executable, "official/imagenet_to_gcs.py", "--raw_data_dir=" + release,
            "--local_scratch_dir=" + out, "--nogcs_upload", "--num_workers=1"]
    r = run_cmd(base + ["--index_only"])
    assert r.returncode == 0, r.stderr
    assert os.path.isfile(os.path.join(out, "ilsvrc-source.index"))
    for k in (1, 0):
        r = run_cmd(base + ["--task_index=%d" % k, "--task_count=2"])
        assert r.returncode == 0, r.stderr
        assert "task %d of 2 (from --task-index %d, --task-count 2)" % (k, k) in r.stderr
        assert "index: read" in r.stderr
    assert _shards(out) == clean_run
    r = run_cmd(base + ["--task_index=2", "--task_count=2"])
    assert r.returncode == 2 and "outside 0..1" in r.stderr


def test_slim_front_ends_in_task_mode(slim_release, tmp_path):
    import shutil
    src, _ = slim_release
    one, split = str(tmp_path / "one"), str(tmp_path / "split")
    shutil.copytree(src, one)
    shutil.copytree(src, split)
    driver = os.path.join(REPO, "slim", "download_and_convert_imagenet.sh")
    r = run_cmd([driver, one, "-j", "1", "--no-verify"])
    assert r.returncode == 0, r.stderr
    assert run_cmd([driver, split, "--index-only", "-j", "1"]).returncode == 0
    for k in range(2):
        r = run_cmd([driver, split, "-j", "1"],
                    env_extra={"BATCH_TASK_INDEX": str(k), "BATCH_TASK_COUNT": "2"})
        assert r.returncode == 0, r.stderr
        assert "task %d of 2 (from BATCH_TASK_INDEX=%d" % (k, k) in r.stderr
    names = sorted(n for n in os.listdir(one) if n.startswith(("train-", "validation-")))
    assert len(names) == 1152
    for n in names:
        with open(os.path.join(one, n), "rb") as a, open(os.path.join(split, n), "rb") as b:
            assert a.read() == b.read(), n
    r = run_cmd(["./verify.sh", "slim", split, "--source", split, "-j", "1"])
    assert r.returncode == 0, r.stdout + r.stderr
    # build_imagenet_data.py: a Kubernetes pod's variables, the count from the env
    out = str(tmp_path / "absl")
    os.makedirs(out)
    script = os.path.join(REPO, "slim", "datasets", "build_imagenet_data.py")
    for k in range(2):
        r = run_cmd([sys.executable, script, "--source_dir=" + src,
                     "--output_directory=" + out, "--bounding_box_file=",
                     "--num_workers=1"],
                    env_extra={"JOB_COMPLETION_INDEX": str(k), "ILSVRC_TASK_COUNT": "2"})
        assert r.returncode == 0, r.stderr
        assert "task %d of 2 (from JOB_COMPLETION_INDEX=%d, ILSVRC_TASK_COUNT=2)" % (
            k, k) in r.stderr
    r = run_cmd(["./verify.sh", "slim", out, "--source", src, "-j", "1"])
    assert r.returncode == 0, r.stdout + r.stderr
