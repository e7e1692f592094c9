"""deploy/slurm/ on a real Slurm: a one-node cluster (Debian's slurm-wlm: slurmctld,
slurmd and munged, all in a temporary directory, on 127.0.0.1, ports chosen free)
runs what submit.sh submits, and the recipes' promises hold there:

* index, a 2-task convert array and a 2-task verify array all complete, the shards
  equal a one-machine ./build.sh byte for byte, and every verify task says OK;
* a requeued task appends to its log (the first attempt's record stays);
* a failed index job cancels the two arrays after it (none left pending);
* the rerun command submit.sh prints, for one task, writes only that task's shards;
* options the partition can never satisfy stop submit.sh before it submits anything.

Skipped, with one line saying why, where no cluster can be started: slurm-wlm or
munge not installed (.ci/run installs them when it can), not root (slurmd runs as
root here), or the daemons do not come up.  Every daemon is stopped afterwards.
"""

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import REPO, generated_release
from test_resume import _shards
from test_tasks import ENV, owned_names

SLURM = os.path.join(REPO, "deploy", "slurm")
SUBMIT = os.path.join(SLURM, "submit.sh")
# What fits the test node (2 CPUs, 1000 MB, whatever the machine has: config_overrides);
# the recipes' defaults (16 CPUs) do not.
OPTIONS = ["--cpus-per-task=1", "--mem=200M", "--time=5"]
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
         "BOOT_FAIL", "DEADLINE", "PREEMPTED"}
SBIN = os.pathsep.join(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])

CONF = """\
ClusterName=ilsvrctest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge.sock
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
KillWait=2
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _free_ports(count):
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """munged, slurmctld and slurmd in the foreground (children of this process), with
    every file in one temporary directory; `env` points Slurm's commands at it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ilsvrc-slurm-")
        os.chmod(self.dir, 0o755)   # munged: its socket's directory must be reachable
        self.procs = []
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.env = dict(ENV, SLURM_CONF=self.conf,
                        PATH=os.environ.get("PATH", "") + os.pathsep + SBIN)

    def _daemon(self, name, *args):
        log = open(os.path.join(self.dir, name + ".out"), "wb")
        proc = subprocess.Popen([shutil.which(name, path=SBIN)] + list(args), env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                start_new_session=True)
        log.close()
        self.procs.append((name, proc))
        return proc

    def _wait(self, what, ready, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError("%s exited (%d): %s" % (name, proc.returncode,
                                                               self.log_line(name)))
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError("%s not ready after %d s" % (what, timeout))

    def log_line(self, name):
        """The last error-ish line a daemon wrote (for a one-line skip reason)."""
        lines = []
        for path in (name + ".out", name + ".log"):
            try:
                lines += open(os.path.join(self.dir, path), errors="replace").read() \
                    .splitlines()
            except OSError:
                pass
        bad = [ln for ln in lines if re.search(r"error|fatal", ln, re.I)]
        return (bad or lines or ["(no output)"])[-1].strip()

    def start(self):
        d = self.dir
        for sub in ("state", "spool"):
            os.mkdir(os.path.join(d, sub))
        key = os.path.join(d, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        ctld_port, d_port = _free_ports(2)
        with open(self.conf, "w") as f:
            f.write(CONF.format(dir=d, ctld_port=ctld_port, d_port=d_port))
        sock = os.path.join(d, "munge.sock")
        self._daemon("munged", "-F", "--socket=" + sock, "--key-file=" + key,
                     "--log-file=" + os.path.join(d, "munged.log"),
                     "--pid-file=" + os.path.join(d, "munged.pid"),
                     "--seed-file=" + os.path.join(d, "munged.seed"))
        self._wait("munged", lambda: os.path.exists(sock), 10)
        self._daemon("slurmctld", "-D", "-c", "-i", "-f", self.conf)
        self._daemon("slurmd", "-D", "-N", "localhost", "-f", self.conf)
        self._wait("the node", lambda: self.cmd("sinfo", "-h", "-o", "%T")
                   .stdout.strip() == "idle", 30)

    def stop(self):
        if any(proc.poll() is None for name, proc in self.procs if name == "slurmctld"):
            self.cmd("scancel", "--user", "root")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.cmd("squeue", "-h").stdout.strip():
                time.sleep(0.3)
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cmd(self, *args, cwd=None, env=None, timeout=30):
        return subprocess.run(list(args), env=dict(self.env, **(env or {})), cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)

    def states(self, *jobs):
        """{array task or job id ('12', '13_0', '14_[0-1]'): (state, reason)}."""
        r = self.cmd("squeue", "-h", "-t", "all", "-j", ",".join(jobs), "-o", "%i|%T|%r")
        assert r.returncode == 0, r.stderr
        return {i: (s, why) for i, s, why in
                (line.split("|") for line in r.stdout.split())}

    def wait(self, jobs, count, timeout, logs=None):
        """Wait until the jobs show `count` entries (None: any), all finished; their
        states."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.states(*jobs)
            if found and count in (None, len(found)) and all(s in FINAL for s, _ in found.values()):
                return found
            if time.monotonic() > deadline:
                tails = ""
                for name in sorted(os.listdir(logs)) if logs else ():
                    tails += "\n== %s\n%s" % (name, open(os.path.join(logs, name))
                                               .read()[-1500:])
                raise AssertionError("after %d s: %s%s" % (timeout, found, tails))
            time.sleep(0.3)


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("no Slurm cluster: not root (this test runs slurmd as root)")
    missing = [n for n in ("munged", "slurmctld", "slurmd", "sbatch", "squeue")
               if not shutil.which(n, path=SBIN)]
    if missing:
        pytest.skip("no Slurm cluster: %s not installed (apt-get install slurm-wlm "
                    "munge)" % ", ".join(missing))
    c = Cluster()
    try:
        c.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        c.stop()
        pytest.skip("no Slurm cluster: the daemons did not start: %s" % e)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return generated_release(tmp_path_factory, "slurm-release", classes=5, per_class=8,
                             val=10, seed=9)


def _submit(cluster, cwd, src, out, *args):
    return cluster.cmd(SUBMIT, *args, cwd=cwd,
                       env=dict(ILSVRC_SRC=src, ILSVRC_OUT=out, ILSVRC_REPO=REPO))


def _jobs(said):
    found = dict(re.findall(r"^\s+(index|convert|verify)\s+job (\d+)", said, re.M))
    assert set(found) == {"index", "convert", "verify"}, said
    return found


def test_submit_runs_the_three_steps_like_one_machine(cluster, release, tmp_path):
    logs, out, one = (str(tmp_path / d) for d in ("logs", "out", "one"))
    os.mkdir(logs)
    # the one-machine run, meanwhile (one worker, as each task has: the cheapest here)
    alone = subprocess.Popen([os.path.join(REPO, "build.sh"), release, "-o", one,
                              "-j", "1"], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    r = _submit(cluster, logs, release, out, "2", *OPTIONS)
    assert r.returncode == 0, r.stdout + r.stderr
    said = r.stdout
    assert "2 tasks; sbatch options for every step: " + " ".join(OPTIONS) in said
    jobs = _jobs(said)
    assert "convert job %s, array 0-1" % jobs["convert"] in said
    assert "verify  job %s, array 0-1" % jobs["verify"] in said
    states = cluster.wait(list(jobs.values()), 5, 60, logs)
    c, v = jobs["convert"], jobs["verify"]
    assert states == {jobs["index"]: ("COMPLETED", "None"),
                      c + "_0": ("COMPLETED", "None"), c + "_1": ("COMPLETED", "None"),
                      v + "_0": ("COMPLETED", "None"), v + "_1": ("COMPLETED", "None")}
    for k in (0, 1):
        text = open(os.path.join(logs, "ilsvrc-convert-%s_%d.log" % (c, k))).read()
        assert "build.sh: task %d of 2 (from --task-index %d, --task-count 2)" % (k, k) \
            in text
        text = open(os.path.join(logs, "ilsvrc-verify-%s_%d.log" % (v, k))).read()
        assert "verify.sh: task %d of 2" % k in text
        assert "OK: every shard name is there and this task's" in text
    assert alone.wait(120) == 0, alone.stdout.read()
    assert _shards(out) == _shards(one)

    # a requeued task (preemption, node failure, scontrol requeue) appends to its log
    assert cluster.cmd("scontrol", "requeue", c + "_0").returncode == 0
    cluster.cmd("scontrol", "update", "JobId=%s_0" % c, "StartTime=now")  # no 2 min wait
    deadline = time.monotonic() + 5
    while cluster.states(c)[c + "_0"][0] == "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster.wait([c], 2, 40, logs)[c + "_0"] == ("COMPLETED", "None")
    text = open(os.path.join(logs, "ilsvrc-convert-%s_0.log" % c)).read()
    assert text.count("build.sh: task 0 of 2") == 2, text
    assert _shards(out) == _shards(one)


def test_failed_index_cancels_the_rest_then_rerun_one_task(cluster, release, tmp_path):
    logs, out = str(tmp_path / "logs"), str(tmp_path / "out")
    os.mkdir(logs)
    r = _submit(cluster, logs, str(tmp_path / "no-such-release"), out, "2", *OPTIONS)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = _jobs(r.stdout)
    states = cluster.wait(list(jobs.values()), None, 30, logs)
    assert states[jobs["index"]][0] == "FAILED"
    for step in ("convert", "verify"):     # cancelled, not pending forever
        mine = [s for i, (s, _) in states.items() if i.startswith(jobs[step] + "_")]
        assert mine and set(mine) == {"CANCELLED"}, states

    # the printed rerun command, for task 1 (the sources now right): only its shards
    (line,) = [ln for ln in r.stdout.splitlines() if ln.strip().startswith(
        "sbatch --array=I ")]
    args = [a.replace("--array=I", "--array=1") for a in shlex.split(line)]
    r = cluster.cmd(*args, cwd=logs, env=dict(ILSVRC_SRC=release, ILSVRC_OUT=out,
                                              ILSVRC_REPO=REPO))
    assert r.returncode == 0, r.stderr
    job = re.search(r"Submitted batch job (\d+)", r.stdout).group(1)
    assert cluster.wait([job], 1, 40, logs) == {job + "_1": ("COMPLETED", "None")}
    text = open(os.path.join(logs, "ilsvrc-convert-%s_1.log" % job)).read()
    assert "task 1 of 2 (from --task-index 1, --task-count 2)" in text
    assert set(_shards(out)) == owned_names(release, 1, 2)


def test_submit_refuses_what_the_partition_cannot_run(cluster, release, tmp_path):
    before = cluster.cmd("squeue", "-h", "-t", "all", "-o", "%i").stdout
    r = _submit(cluster, str(tmp_path), release, str(tmp_path / "out"), "2")
    assert r.returncode == 1
    assert "Slurm would never run index.sbatch with its defaults" in r.stderr
    assert "Requested node configuration is not available" in r.stderr
    assert "nothing was submitted" in r.stderr
    r = _submit(cluster, str(tmp_path), release, str(tmp_path / "out"), "2",
                "--array=0-3")
    assert r.returncode == 2 and "submit.sh sets --array" in r.stderr
    assert cluster.cmd("squeue", "-h", "-t", "all", "-o", "%i").stdout == before


def test_array_of_one_task_without_a_count_is_refused(tmp_path):
    """No cluster needed: `sbatch --array=5 convert.sbatch` without ILSVRC_TASK_COUNT
    would be a whole-plan run (an array of one task); the recipe stops instead."""
    env = dict(ENV, ILSVRC_SRC=str(tmp_path), ILSVRC_OUT=str(tmp_path / "out"),
               ILSVRC_REPO=REPO, SLURM_ARRAY_TASK_ID="5", SLURM_ARRAY_TASK_MIN="5",
               SLURM_ARRAY_TASK_COUNT="1")
    r = subprocess.run(["bash", os.path.join(SLURM, "convert.sbatch")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "an array of one task (SLURM_ARRAY_TASK_ID=5) would convert everything" \
        in r.stderr
    assert not os.path.exists(str(tmp_path / "out"))
