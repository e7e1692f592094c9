"""Shared fixtures: generated ILSVRC2012 samples and a quiet TensorFlow."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

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


@pytest.fixture(scope="session")
def gcs_emulator():
    """A Cloud Storage emulator on 127.0.0.1 (free port) for the whole session;
    STORAGE_EMULATOR_HOST points at it while it runs.  Stopped at the end."""
    from gcs_emulator import Emulator
    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()
