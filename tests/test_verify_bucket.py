"""./verify.sh on a gs:// output: the sample converted to a bucket by build.sh, then
re-read from the bucket by verify.sh, independently of the run that wrote it (against
the Cloud Storage emulator on 127.0.0.1, fixture gcs_emulator); a missing and a
corrupted object are named.  The flat layout of a slim output and what the listing
ignores are checked against a test double of the store."""

import os
import subprocess

import pytest

from conftest import REPO
from ilsvrc import storage
from ilsvrc.formats import registry
from ilsvrc.verify import inventory

BUCKET = "verify-bucket-%d" % os.getpid()
OUT = "gs://%s/imagenet" % BUCKET
VERIFY = os.path.join(REPO, "verify.sh")


def run_cmd(args, **env):
    env = dict(os.environ, PYTHONPATH=REPO, **env)
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def converted(gcs_emulator, sample_release, tmp_path_factory):
    """The sample converted by build.sh straight into gs://BUCKET/imagenet."""
    gcs_emulator.bucket(BUCKET)
    r = run_cmd(["./build.sh", sample_release[0], "-o", OUT + "/", "-j", "2",
                 "--no-verify"], ILSVRC_INDEX_DIR=str(tmp_path_factory.mktemp("index")))
    assert r.returncode == 0, r.stderr
    return gcs_emulator.client().bucket(BUCKET)


def _verify(*args):
    r = run_cmd([VERIFY] + list(args) + ["-j", "2"])
    assert "Traceback" not in r.stderr, r.stderr
    return r


def _problems(r):
    return [x for x in r.stderr.splitlines() if x.startswith("verify.sh: problem: ")]


def test_the_bucket_output_checks_out_against_its_source(converted, sample_release):
    r = _verify("official", OUT, "--source", sample_release[0])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("official shards in %s\n" % OUT)
    assert "train      1024/1024 shards  30 records" in r.stdout
    assert "validation  128/128 shards  12 records" in r.stdout
    assert "every one of the 42 images" in r.stdout
    assert r.stdout.rstrip().endswith("OK: all 1152 shards check out")
    assert "verifying: 1152/1152 shards" in r.stderr


def test_task_mode_reads_its_share_from_the_bucket(converted):
    r = _verify("official", OUT + "/", "--task-index", "1", "--task-count", "2")
    assert r.returncode == 0, r.stderr
    assert "task 1 of 2: 576 shards re-read" in r.stdout
    assert "this task's 576 shards check out" in r.stdout


def test_a_deleted_object_is_named(converted):
    blob = converted.get_blob("imagenet/validation-00003-of-00128")
    data = blob.download_as_bytes()
    blob.delete()
    try:
        r = _verify("official", OUT)
    finally:
        converted.blob(blob.name).upload_from_string(data)
    assert r.returncode == 1
    assert _problems(r) == ["verify.sh: problem: %s: 1 of 128 validation shards missing "
                            "(validation-00003-of-00128)" % OUT]
    assert r.stderr.rstrip().endswith("1 problem found in %s (listed above)" % OUT)


def test_a_corrupted_object_is_named(converted):
    name = next(b.name for b in converted.list_blobs(prefix="imagenet/train-")
                if b.size)
    data = converted.blob(name).download_as_bytes()
    spoiled = bytearray(data)
    spoiled[len(data) // 2] ^= 1
    converted.blob(name).upload_from_string(bytes(spoiled))
    try:
        r = _verify("official", OUT)
    finally:
        converted.blob(name).upload_from_string(data)
    assert r.returncode == 1
    [p] = _problems(r)
    assert p.startswith("verify.sh: problem: gs://%s/%s: corrupt after 0 good records"
                        % (BUCKET, name)), p


def test_a_prefix_without_objects_and_a_missing_bucket(converted):
    r = _verify("official", "gs://%s/nothing-here" % BUCKET)
    assert r.returncode == 1
    assert "gs://%s/nothing-here holds no objects (no train or validation shards)" \
        % BUCKET in r.stderr
    r = _verify("slim", "gs://no-such-bucket/x")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(
        "verify.sh: error: bucket gs://no-such-bucket does not exist")


# ------------------------------------------------------------- the listing itself

class ListingStore:
    """The store's list() over fixed object names (all inventory asks a bucket)."""

    def __init__(self, names):
        self.names = names

    def list(self, prefix):
        return [storage.Info(prefix + n, 1, 0, 1, {}) for n in sorted(self.names)]


def test_a_slim_bucket_is_flat_and_only_shard_names_count(monkeypatch):
    slim = registry.FORMATS["slim"]
    names = {"train-%05d-of-01024" % k for k in range(1024) if k != 5}
    names |= {"validation-%05d-of-00128" % k for k in range(128)}
    names |= {"train-01024-of-01024",              # an unknown shard name: a problem
              ".train-00001-of-01024.x.partial",   # no partial files in a bucket
              "imagenet_2012_bounding_boxes.csv"}  # none of verify's business
    monkeypatch.setattr(storage, "_override", ListingStore(
        names | {"old/train-00005-of-01024"}))     # under another prefix: not this one
    shards, problems, warnings = inventory.inventory(slim, "gs://b/slim/")
    assert len(shards) == 1023 + 128 and not warnings
    assert shards[0] == ("train", 0, "gs://b/slim/train-00000-of-01024")
    assert problems[0] == ("gs://b/slim: 1 of 1024 train shards missing "
                           "(train-00005-of-01024)")
    assert problems[1].startswith("gs://b/slim/train-01024-of-01024: unknown shard name")
    assert len(problems) == 2
