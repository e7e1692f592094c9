"""Shared fixtures: generated ILSVRC2012 samples and a quiet TensorFlow."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# A test suite run inside a job array must not turn the runs it starts into tasks.
for _var in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "BATCH_TASK_INDEX",
             "AWS_BATCH_JOB_ARRAY_INDEX", "ILSVRC_TASK_COUNT"):
    os.environ.pop(_var, None)
# Google's auth library looks for a metadata server when it finds no credentials: point
# it (and every command the tests start) at a closed port on this machine.
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
# A shell starts a background job (`./test.sh > log &` in a script, nohup, some CI
# runners) with SIGINT ignored, and every command a test starts inherits that: Python
# then installs no KeyboardInterrupt handler, so a test that interrupts a command as
# Ctrl-C would (test_metalhead_download.py) waits for an exit that never comes.  Give
# this process, and so every command it starts, the default Ctrl-C behaviour back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from ilsvrc.testing import sample  # noqa: E402


@pytest.fixture(scope="session")
def tf():
    from ilsvrc.tfimport import tensorflow
    return tensorflow()


@pytest.fixture(scope="session")
def sample_release(tmp_path_factory):
    """A read-only miniature release: (directory, manifest).  Copy before changing."""
    d = str(tmp_path_factory.mktemp("release"))
    manifest = sample.generate(d)
    return d, manifest


@pytest.fixture(scope="session")
def slim_release(tmp_path_factory):
    """A read-only sample release with the bounding box archive: (dir, manifest)."""
    d = str(tmp_path_factory.mktemp("slim_release"))
    return d, sample.generate(d, bbox=True)


@pytest.fixture(scope="session")
def official_sample(sample_release, tmp_path_factory):
    """The sample release converted once, in this process, to the official format with
    build.sh's defaults (1024 + 128 shards): the output directory, read-only; copy it
    before changing it.  The conversion is deterministic, so this is what every front end
    writes for the sample (test_official.py compares others with it)."""
    import io
    from ilsvrc import pool
    from ilsvrc.formats import official
    out = str(tmp_path_factory.mktemp("official-sample") / "out")
    with pool.Pool(0) as runner:
        official.convert(sample_release[0], out, runner, log=io.StringIO())
    return out


@pytest.fixture
def release_copy(sample_release, tmp_path):
    """A private copy of the sample release that a test may modify."""
    src, manifest = sample_release
    dst = str(tmp_path / "release")
    shutil.copytree(src, dst)
    return dst, manifest


def run_cmd(args, **kw):
    """Run a command from the repository root; return CompletedProcess (text)."""
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", REPO)
    return subprocess.run(args, cwd=kw.pop("cwd", REPO), env=env, capture_output=True,
                          text=True, **kw)


def python():
    return sys.executable


def shard_records(path):
    """Every record of a shard, decoded: [{key: (kind, values)}] (pure-Python reader,
    so it also checks the framing and CRCs independently of TensorFlow)."""
    from ilsvrc.records import features, tfrecord
    return [features.decode(r) for r in tfrecord.read_records(path)]

def kill_after_shards(cmd, directory, count, env):
    """Run `cmd` (cwd REPO) until `directory` holds `count` finished files, then kill
    its whole process group with SIGKILL, as a preemption would."""
    import signal
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_shards(proc, directory, count)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def generated_release(tmp_path_factory, name, **shape):
    """A sample release (ilsvrc.testing.sample.generate) in a fresh temporary folder."""
    d = str(tmp_path_factory.mktemp(name))
    sample.generate(d, **shape)
    return d


def wait_for_shards(proc, directory, count, timeout=120):
    """Wait until `directory` holds `count` finished files (names not starting with
    '.') while `proc` is still running; fail if it ends first."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done = [n for n in os.listdir(directory) if not n.startswith(".")]
        except FileNotFoundError:
            done = []
        if len(done) >= count:
            return
        assert proc.poll() is None, "the run ended before it could be stopped"
        time.sleep(0.005)
    raise AssertionError("no %d finished files in %s after %d s" % (count, directory,
                                                                    timeout))

@pytest.fixture(scope="module")
def gcs_emulator():
    """A Cloud Storage emulator on 127.0.0.1 (free port) for one test module;
    STORAGE_EMULATOR_HOST points at it while it runs.  Stopped after the module: once
    it has served requests, gcp-storage-emulator keeps a core busy until it exits
    (measured: ~0.9 s of CPU per second), which would slow every later test on CI's
    2 cores and make timing-sensitive ones flaky."""
    from gcs_emulator import Emulator
    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()


# Modules that take longest (a full run's --durations), started first so that under
# ./test.sh's `--dist loadfile` no worker is left alone with one of them at the end.
# Only the order of modules changes; tests within a module keep theirs.
SLOW_MODULES = ("test_docs.py", "test_tasks.py", "test_deploy.py", "test_bad_inputs.py",
                "test_storage.py", "test_official.py", "test_contract_official.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return SLOW_MODULES.index(name) if name in SLOW_MODULES else len(SLOW_MODULES)
    items[:] = sorted(items, key=rank)   # stable: collection order otherwise
