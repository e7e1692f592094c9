"""The deploy/ recipes: each one's body runs here with the variables its scheduler
would set, and exactly that task's shards appear (then the verify recipes pass)."""

import json
import os
import re
import subprocess

import pytest

from conftest import REPO, generated_release
from test_tasks import ENV, _shards, owned_names

DEPLOY = os.path.join(REPO, "deploy")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return generated_release(tmp_path_factory, "deploy-release", classes=5, per_class=8,
                             val=10, seed=9)


def _yaml_body(path):
    """The `bash -c` script of a Job manifest (the block under `args: - |`)."""
    lines = open(path).read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- |")
    indent = len(lines[start]) - len(lines[start].lstrip()) + 2
    body = []
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line[indent:])
    return "\n".join(body) + "\n"


def _yaml_number(path, key):
    return [int(v) for v in re.findall(r"^\s*%s:\s*(\d+)\s*$" % key, open(path).read(),
                                       re.M)]


def _batch_body(path):
    job = json.load(open(path))
    group = job["taskGroups"][0]
    (runnable,) = group["taskSpec"]["runnables"]
    container = runnable["container"]
    assert container["entrypoint"] == "bash" and container["commands"][0] == "-c"
    assert container["imageUri"].startswith("tensorflow/tensorflow:")
    return group, container["commands"][1]


def _run(script_or_file, env, inline=False):
    args = ["bash", "-c", script_or_file] if inline else ["bash", script_or_file]
    r = subprocess.run(args, cwd="/", env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _env(release, out, **scheduler):
    return dict(ENV, ILSVRC_SRC=release, ILSVRC_OUT=out, ILSVRC_REPO=REPO, **scheduler)


def test_slurm_index_then_one_array_task(release, tmp_path):
    out = str(tmp_path / "out")
    _run(os.path.join(DEPLOY, "slurm", "index.sbatch"), _env(release, out))
    assert os.path.isfile(os.path.join(out, "ilsvrc-source.index"))
    text = open(os.path.join(DEPLOY, "slurm", "convert.sbatch")).read()
    assert re.search(r"^#SBATCH --array=0-\d+$", text, re.M)
    r = _run(os.path.join(DEPLOY, "slurm", "convert.sbatch"), _env(
        release, out, SLURM_ARRAY_TASK_ID="5", SLURM_ARRAY_TASK_MIN="4",
        SLURM_ARRAY_TASK_COUNT="3", SLURM_JOB_ID="77"))
    assert "task 1 of 3 (from SLURM_ARRAY_TASK_ID=5 - SLURM_ARRAY_TASK_MIN=4" in r.stderr
    assert "index: read" in r.stderr
    assert set(_shards(out)) == owned_names(release, 1, 3)


def test_kubernetes_indexed_job_pod(release, tmp_path):
    job = os.path.join(DEPLOY, "kubernetes", "convert-job.yaml")
    text = open(job).read()
    assert "completionMode: Indexed" in text and "tensorflow/tensorflow:" in text
    n = _yaml_number(job, "completions")
    assert n == _yaml_number(job, "parallelism")
    assert re.search(r'name: ILSVRC_TASK_COUNT, value: "%d"' % n[0], text)
    assert "persistentVolumeClaim" in text and "mountPath: /data" in text
    out = str(tmp_path / "out")
    _run(_yaml_body(os.path.join(DEPLOY, "kubernetes", "index-job.yaml")),
         _env(release, out), inline=True)
    r = _run(_yaml_body(job), _env(release, out, JOB_COMPLETION_INDEX="0",
                                   ILSVRC_TASK_COUNT="3"), inline=True)
    assert "task 0 of 3 (from JOB_COMPLETION_INDEX=0, ILSVRC_TASK_COUNT=3)" in r.stderr
    assert "index: read" in r.stderr
    assert set(_shards(out)) == owned_names(release, 0, 3)


def test_cloud_batch_task(release, tmp_path):
    out = str(tmp_path / "out")
    group, body = _batch_body(os.path.join(DEPLOY, "cloud-batch", "index-job.json"))
    assert group["taskCount"] == 1
    _run(body, _env(release, out, BATCH_TASK_INDEX="0", BATCH_TASK_COUNT="1"),
         inline=True)
    group, body = _batch_body(os.path.join(DEPLOY, "cloud-batch", "convert-job.json"))
    assert group["taskCount"] == group["parallelism"] > 1
    assert group["taskSpec"]["volumes"][0]["mountPath"] == "/mnt/disks/imagenet"
    r = _run(body, _env(release, out, BATCH_TASK_INDEX="2", BATCH_TASK_COUNT="3"),
             inline=True)
    assert "task 2 of 3 (from BATCH_TASK_INDEX=2, BATCH_TASK_COUNT=3)" in r.stderr
    assert set(_shards(out)) == owned_names(release, 2, 3)


def test_verify_recipes_split_the_union_check(release, tmp_path):
    out = str(tmp_path / "out")
    subprocess.run([os.path.join(REPO, "build.sh"), release, "-o", out, "-j", "1",
                    "--no-verify"], env=ENV, check=True, capture_output=True)
    _, batch = _batch_body(os.path.join(DEPLOY, "cloud-batch", "verify-job.json"))
    runs = [
        (os.path.join(DEPLOY, "slurm", "verify.sbatch"), False,
         dict(SLURM_ARRAY_TASK_ID="0", SLURM_ARRAY_TASK_COUNT="3")),
        (_yaml_body(os.path.join(DEPLOY, "kubernetes", "verify-job.yaml")), True,
         dict(JOB_COMPLETION_INDEX="1", ILSVRC_TASK_COUNT="3")),
        (batch, True, dict(BATCH_TASK_INDEX="2", BATCH_TASK_COUNT="3")),
    ]
    for k, (body, inline, sched) in enumerate(runs):
        r = _run(body, _env(release, out, **sched), inline=inline)
        assert "task %d of 3" % k in r.stderr
        assert "OK: every shard name is there and this task's" in r.stdout
    # and a verify task fails when a shard of its share is gone
    victim = sorted(owned_names(release, 1, 3))[0]
    os.remove(os.path.join(out, victim))
    r = subprocess.run(["bash", "-c", runs[1][0]], cwd="/", capture_output=True,
                       text=True, env=_env(release, out, **runs[1][2]))
    assert r.returncode == 1 and os.path.basename(victim) in r.stderr
