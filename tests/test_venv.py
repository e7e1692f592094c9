"""The Python front ends run under a plain `python3`: outside the checkout's
virtualenv they restart in it, and without one they say in one line how to make it."""

import os
import shutil
import subprocess

import pytest

from conftest import REPO

SYSTEM = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
SCRIPTS = ["official/imagenet_to_gcs.py", "slim/datasets/build_imagenet_data.py",
           "slim/datasets/preprocess_imagenet_validation_data.py",
           "slim/datasets/process_bounding_boxes.py"]


def _run(cmd, cwd):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _system_has_tf():
    return _run([SYSTEM, "-c", "import absl, tensorflow"], REPO).returncode == 0


@pytest.mark.skipif(SYSTEM is None, reason="no system python3")
@pytest.mark.parametrize("script", SCRIPTS)
def test_plain_python3_finds_the_virtualenv(script):
    if not os.path.exists(os.path.join(REPO, ".venv", "bin", "python")):
        pytest.skip("this checkout has no .venv")
    r = _run([SYSTEM, script, "--help"], REPO)
    # the same help and exit status as under .venv/bin/python
    direct = _run([os.path.join(REPO, ".venv", "bin", "python"), script, "--help"], REPO)
    assert (r.returncode, r.stdout) == (direct.returncode, direct.stdout)
    assert script.rsplit("/", 1)[-1] in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(SYSTEM is None, reason="no system python3")
def test_without_a_virtualenv_one_line_names_setup_sh(tmp_path):
    if _system_has_tf():
        pytest.skip("the system python3 has TensorFlow: the scripts run under it")
    for d in ("ilsvrc", "official"):
        shutil.copytree(os.path.join(REPO, d), str(tmp_path / d),
                        ignore=shutil.ignore_patterns("__pycache__"))
    r = _run([SYSTEM, "official/imagenet_to_gcs.py", "--help"], str(tmp_path))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "setup.sh" in lines[0] and "imagenet_to_gcs.py" in lines[0]
