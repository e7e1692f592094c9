"""ilsvrc/storage/: the narrow storage interface, gs:// output and input.

Two kinds of tests.  Against the Cloud Storage emulator on 127.0.0.1 (fixture
gcs_emulator): whole conversions bucket -> bucket and local -> bucket, resume after
a kill, refusals.  Against `FakeStore`, a test double of the narrow interface, for
what the emulator does not do like the real service: create-if-absent preconditions
(the emulator ignores ifGenerationMatch=0 and overwrites), 429/5xx and dropped
connections (it never fails), and the service's own CRC32C check.
"""

import io
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import REPO, python
from ilsvrc import plan, storage
from ilsvrc.formats import bbox
from ilsvrc.sources import tarindex
from ilsvrc.verify import reread
from ilsvrc.records import tfrecord
from ilsvrc.errors import UserError
from ilsvrc.write import upload
from ilsvrc.sources import remote
from ilsvrc.sources import cached
from ilsvrc import crc32c

TARS = [tarindex.TRAIN_TAR, tarindex.VAL_TAR]


def run_cmd(args, env=None):
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONPATH", REPO)
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)


# ----------------------------------------------------------------- the test double

class FakeStore:
    """The narrow interface in memory, with the real service's semantics that the
    emulator lacks: create fails with Exists when the object is there, and a list
    of failures (Transient) can be queued per operation."""

    def __init__(self):
        self.objects = {}       # path -> (bytes, metadata, generation)
        self.fail = {"read": [], "create": [], "stat": [], "list": []}
        self.calls = {k: 0 for k in self.fail}
        self.gen = 0

    def _maybe_fail(self, op):
        self.calls[op] += 1
        if self.fail[op]:
            raise self.fail[op].pop(0)

    def _info(self, path):
        data, meta, gen = self.objects[path]
        return storage.Info(path, len(data), crc32c.value(data), gen, dict(meta))

    def stat(self, path, want_crc=False):
        self._maybe_fail("stat")
        return self._info(path) if path in self.objects else None

    def list(self, prefix):
        self._maybe_fail("list")
        return [self._info(p) for p in sorted(self.objects) if p.startswith(prefix)]

    def read(self, path, offset, size):
        def once():
            self._maybe_fail("read")
            return self.objects[path][0][offset:offset + size]
        data = storage.with_retries(once, sleep=lambda s: None)
        if len(data) != size:
            raise storage.short_read(path, offset, len(data), size)
        return data

    def create(self, path, fileobj, size, crc, metadata=None):
        self._maybe_fail("create")
        fileobj.seek(0)
        data = fileobj.read()
        if crc32c.value(data) != crc or len(data) != size:   # the service's check
            raise UserError("crc mismatch")
        if path in self.objects:
            raise storage.Exists(path)
        self.gen += 1
        self.objects[path] = (data, dict(metadata or {}), self.gen)
        return self._info(path)


@pytest.fixture
def fake(monkeypatch):
    store = FakeStore()
    monkeypatch.setattr(storage, "_override", store)
    return store


def test_crc32c_matches_the_reference_and_the_service_spelling():
    data = os.urandom(5000)
    assert crc32c.value(data) == crc32c.table(data)
    assert crc32c.value(b"123456789") == 0xE3069283          # the CRC-32C check value
    assert crc32c.extend(crc32c.value(data[:1000]), data[1000:]) == crc32c.value(data)
    assert crc32c.from_b64(crc32c.b64(0xE3069283)) == 0xE3069283
    assert crc32c.b64(0xE3069283) == "4waSgw=="


def test_shard_writer_frames_like_tfrecord_and_uploads_once(fake, tmp_path):
    payloads = [b"", b"x", os.urandom(3000)]
    w = upload.ShardWriter("gs://b/p/train-00000-of-00001", "PLAN")
    for p in payloads:
        w.write(p)
    size = w.close()
    data, meta, _ = fake.objects["gs://b/p/train-00000-of-00001"]
    assert data == b"".join(tfrecord.frame(p) for p in payloads) and size == len(data)
    assert meta == {"ilsvrc-plan": "PLAN", "ilsvrc-size": str(len(data)),
                    "ilsvrc-crc32c": crc32c.b64(crc32c.value(data))}
    (tmp_path / "r").write_bytes(data)
    assert list(tfrecord.read_records(str(tmp_path / "r"))) == payloads
    assert list(reread.bucket_records("gs://b/p/train-00000-of-00001")) == payloads
    bad = bytearray(data)
    bad[-5] ^= 1                                   # a bit of the last payload
    fake.objects["gs://b/p/bad"] = (bytes(bad), meta, 9)
    with pytest.raises(tfrecord.CorruptRecord, match="record 2: data CRC mismatch"):
        list(reread.bucket_records("gs://b/p/bad"))


def test_an_existing_object_is_never_overwritten(fake):
    path = "gs://b/p/train-00000-of-00001"
    fake.objects[path] = (b"someone else's", {}, 7)
    w = upload.ShardWriter(path, "PLAN")
    w.write(b"ours")
    with pytest.raises(UserError, match="already exists and is not a shard of this "
                                        "conversion.*never overwritten"):
        w.close()
    assert fake.objects[path] == (b"someone else's", {}, 7)


def test_the_same_shard_written_by_another_task_is_accepted(fake):
    path = "gs://b/p/train-00000-of-00001"
    first = upload.ShardWriter(path, "PLAN")
    first.write(b"rec")
    first.close()
    before = fake.objects[path]
    second = upload.ShardWriter(path, "PLAN")   # a second task races for the shard
    second.write(b"rec")
    second.close()
    assert second.existed and fake.objects[path] == before
    other_plan = upload.ShardWriter(path, "OTHER")
    other_plan.write(b"rec")
    with pytest.raises(UserError, match="not a shard of this conversion"):
        other_plan.close()


class _Split:
    prefix, out_dir, num_shards = "train", "gs://b/p", 3

    def path(self, k):
        return "gs://b/p/" + plan.shard_name("train", k, 3)


def test_resume_counts_only_complete_shards_of_this_plan(fake):
    for k in (0, 2):
        w = upload.ShardWriter(_Split().path(k), "PLAN")
        w.write(b"r%d" % k)
        w.close()
    assert upload.remote_done(_Split(), "PLAN") == {0, 2}
    data, meta, gen = fake.objects[_Split().path(2)]
    fake.objects[_Split().path(2)] = (data + b"!", meta, gen)   # size/CRC no longer match
    with pytest.raises(UserError, match="train-00002-of-00003 already exists"):
        upload.remote_done(_Split(), "PLAN")
    with pytest.raises(UserError, match="train-00000-of-00003 already exists"):
        upload.remote_done(_Split(), "ANOTHER PLAN")


def test_transient_failures_are_retried_with_growing_backoff():
    waits, failures = [], [storage.Transient("429")] * 4

    def flaky():
        if failures:
            raise failures.pop()
        return "ok"
    assert storage.with_retries(flaky, sleep=waits.append, seed=1) == "ok"
    assert len(waits) == 4 and all(b > a for a, b in zip(waits, waits[1:]))
    with pytest.raises(storage.Transient):
        storage.with_retries(lambda: (_ for _ in ()).throw(storage.Transient("503")),
                             attempts=2, sleep=lambda s: None)


def test_reads_retry_and_short_reads_name_the_object(fake):
    fake.objects["gs://b/t.tar"] = (bytes(range(200)), {}, 1)
    fake.fail["read"] = [storage.Transient("503"), storage.Transient("reset")]
    assert storage.read("gs://b/t.tar", 10, 5) == bytes(range(10, 15))
    assert fake.calls["read"] == 3
    with pytest.raises(UserError, match=r"gs://b/t.tar: the object ends at byte 200, "
                                        r"inside a member that should run to byte 250"):
        storage.read("gs://b/t.tar", 150, 100)


def test_read_ahead_keeps_order_with_several_reads_in_flight(fake):
    fake.objects["gs://b/t"] = (os.urandom(1000), {}, 1)
    items = [("gs://b/t", k * 10, 10) for k in range(50)]
    got = list(remote.read_ahead(items, lambda it: storage.read(*it), depth=4))
    assert b"".join(got) == fake.objects["gs://b/t"][0][:500]


@pytest.mark.parametrize("block", [0, 8 << 20])   # header reads, streaming pass
def test_tar_headers_read_from_a_bucket_give_the_local_listing(fake, sample_release,
                                                               monkeypatch, block):
    raw, _ = sample_release
    monkeypatch.setattr(tarindex, "TAR_READ_BLOCK", block)
    for name in TARS:
        with open(os.path.join(raw, name), "rb") as f:
            fake.objects["gs://b/in/" + name] = (f.read(), {}, 1)
    from ilsvrc import pool
    with pool.Pool(0) as runner:
        local = tarindex.index_train_tar(os.path.join(raw, TARS[0]), runner)
        remote = tarindex.index_train_tar("gs://b/in/" + TARS[0], runner)
    assert [remote.relpath(i) for i in range(len(remote))] == \
        [local.relpath(i) for i in range(len(local))]
    assert list(remote.offset) == list(local.offset) and list(remote.size) == list(local.size)
    # header reads: one request per member header (plus the end markers); streaming:
    # one per inner tar, the tars here being far smaller than a read
    per_member = fake.calls["read"] > len(local)
    assert per_member == (block == 0)


def test_the_index_of_a_bucket_source_is_built_once_and_rebuilt_when_a_tar_changes(
        fake, sample_release, tmp_path):
    raw, _ = sample_release
    paths = ["gs://b/in/" + n for n in TARS]
    for name, p in zip(TARS, paths):
        with open(os.path.join(raw, name), "rb") as f:
            fake.objects[p] = (f.read(), {}, 1)
    from ilsvrc import pool
    built = []

    def build():
        built.append(1)
        with pool.Pool(0) as runner:
            return (tarindex.index_train_tar(paths[0], runner),
                    tarindex.index_flat_tar(paths[1]))
    log = io.StringIO()
    first = cached.cached_listings(paths, build, str(tmp_path), log)
    again = cached.cached_listings(paths, build, str(tmp_path), log)
    assert len(built) == 1 and "index of gs://b/in/" in log.getvalue()
    for a, b in zip(first, again):
        assert [a.relpath(i) for i in range(len(a))] == [b.relpath(i) for i in range(len(b))]
        assert list(a.offset) == list(b.offset) and list(a.size) == list(b.size)
        assert a.containers == b.containers == [a.containers[0]]
    data, meta, _ = fake.objects[paths[1]]
    fake.objects[paths[1]] = (data, meta, 2)          # re-uploaded: new generation
    cached.cached_listings(paths, build, str(tmp_path), log)
    assert len(built) == 2


# ----------------------------------------------------------------- error lines

def _classify(err, doing="reading"):
    return storage.gcs.classify(err, "gs://bkt/some/obj", doing)


def test_service_errors_become_one_line_naming_the_bucket_and_the_fix():
    from google.api_core import exceptions as ex
    import google.auth.exceptions as aex
    import requests
    secret = "ya29.SECRET-TOKEN"
    for err in (ex.TooManyRequests("slow down"), ex.ServiceUnavailable("x"),
                ex.InternalServerError("x"), ex.BadGateway("x"), ConnectionResetError(),
                requests.exceptions.ConnectionError("reset"), aex.TransportError("x"),
                ex.Forbidden("rateLimitExceeded: rate limit exceeded")):
        assert isinstance(_classify(err), storage.Transient), err
    assert isinstance(_classify(ex.PreconditionFailed("x")), storage.Exists)
    cases = [
        (aex.DefaultCredentialsError("File %s was not found" % secret),
         "no Google Cloud credentials for gs://bkt: run 'gcloud auth "
         "application-default login'"),
        (aex.RefreshError("invalid_grant %s" % secret), "credentials were refused"),
        (ex.Unauthorized("bearer %s" % secret), "gs://bkt refused the credentials (401)"),
        (ex.Forbidden("user %s lacks storage.objects.get" % secret),
         "gs://bkt: permission denied (403) while reading. Grant the account of your "
         "credentials roles/storage.objectViewer"),
        (ex.Forbidden("The project exceeded its quota %s" % secret),
         "gs://bkt: the project's quota is used up or billing is off (403)"),
        (ex.NotFound("x"), "gs://bkt: not found (404)"),
    ]
    for err, text in cases:
        out = _classify(err)
        assert isinstance(out, UserError) and text in str(out), (err, out)
        assert secret not in str(out) and "\n" not in str(out)
    assert "roles/storage.objectCreator" in str(_classify(ex.Forbidden("no"), "writing"))


def test_a_bucket_that_cannot_be_looked_up_is_not_called_missing(monkeypatch):
    """objectViewer / objectCreator grant no storage.buckets.get: the lookup's 403
    leaves the object calls to say what is missing; a bucket that is not there is
    still named."""
    from google.api_core import exceptions as ex

    class Client:
        def __init__(self, answer):
            self.answer = answer

        def lookup_bucket(self, name, retry=None):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    store = storage.GcsStore("test-project")
    monkeypatch.setattr(store, "_client", lambda path=None: Client(
        ex.Forbidden("caller does not have storage.buckets.get access")))
    store.check_bucket("gs://bkt/in", "reading")      # no error
    monkeypatch.setattr(store, "_client", lambda path=None: Client(None))
    with pytest.raises(UserError, match="bucket gs://bkt does not exist"):
        store.check_bucket("gs://bkt/in", "reading")


def test_missing_credentials_is_one_line(sample_release, tmp_path):
    raw, _ = sample_release
    env = dict(os.environ, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "none.json"),
               GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9")
    env.pop("STORAGE_EMULATOR_HOST", None)
    r = run_cmd(["./build.sh", raw, "-o", "gs://some-bucket/x", "-j", "0"], env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "build.sh: error: no Google Cloud credentials for gs://some-bucket: run 'gcloud "
        "auth application-default login'"), r.stderr


def test_google_cloud_is_imported_only_for_gs_paths(sample_release, tmp_path):
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from ilsvrc import storage\nfrom ilsvrc.cli import build as cli_build\n"
            "cli_build.main([%r, '-o', %r, '-j', '0', '--no-verify'])\n"
            "assert 'google.cloud.storage' not in sys.modules, 'GCS-WAS-IMPORTED'\n"
            "sys.modules['google.cloud'] = None\n"
            "storage.gcs._gcs_modules()\n") % (REPO, sample_release[0], str(tmp_path / "o"))
    r = subprocess.run([python(), "-c", code], capture_output=True, text=True)
    assert "GCS-WAS-IMPORTED" not in r.stderr and r.returncode == 1
    assert "gs:// paths need the google-cloud-storage package: run './setup.sh --gcs'" \
        in r.stderr.strip().splitlines()[-1]


# ----------------------------------------------------------------- against the emulator

@pytest.fixture(scope="module")
def local_records(sample_release, tmp_path_factory):
    """The local conversion of the sample: {shard name: bytes}."""
    raw, _ = sample_release
    out = str(tmp_path_factory.mktemp("local") / "out")
    r = run_cmd(["./build.sh", raw, "-o", out, "-j", "2", "--no-verify"])
    assert r.returncode == 0, r.stderr
    shards = {}
    for sub in ("train", "validation"):
        for name in os.listdir(os.path.join(out, sub)):
            if not name.startswith("."):
                with open(os.path.join(out, sub, name), "rb") as f:
                    shards[name] = f.read()
    assert len(shards) == 1024 + 128
    return shards


_buckets = iter(range(1000))


def _new_bucket(emu):
    name = "test-bucket-%d-%d" % (os.getpid(), next(_buckets))
    emu.bucket(name)
    return name


@pytest.fixture(scope="module")
def source_bucket(gcs_emulator, sample_release):
    raw, _ = sample_release
    name = _new_bucket(gcs_emulator)
    gcs_emulator.upload_dir(name, "release/", raw, TARS + ["synset_labels.txt"])
    return name


def _env(tmp_path):
    return dict(os.environ, ILSVRC_INDEX_DIR=str(tmp_path / "index"))


def _names_and_bytes(emu, bucket, prefix):
    return {name[len(prefix):]: data
            for name, (data, _) in emu.objects(bucket, prefix).items()}


def test_bucket_to_bucket_is_byte_identical_to_the_local_conversion(
        gcs_emulator, source_bucket, local_records, tmp_path):
    dst = _new_bucket(gcs_emulator)
    r = run_cmd(["./build.sh", "gs://%s/release" % source_bucket, "-o",
                 "gs://%s/imagenet/" % dst, "-j", "2"], env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "verified: 30 train and 12 validation records" in r.stderr
    got = _names_and_bytes(gcs_emulator, dst, "imagenet/")
    assert sorted(got) == sorted(local_records)           # flat: train-* validation-*
    for name, data in local_records.items():
        assert got[name] == data, name
    blob = gcs_emulator.client().bucket(dst).get_blob("imagenet/train-00000-of-01024")
    assert blob.metadata["ilsvrc-crc32c"] == blob.crc32c == crc32c.b64(
        crc32c.value(local_records["train-00000-of-01024"]))
    # the index was built from the bucket once and is reused
    assert "indexed gs://%s/release/%s" % (source_bucket, TARS[0]) in r.stderr
    assert os.listdir(str(tmp_path / "index"))
    again = run_cmd(["./build.sh", "gs://%s/release" % source_bucket, "-o",
                     "gs://%s/imagenet" % dst, "-j", "0", "--no-verify"], env=_env(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "index of gs://" in again.stderr and "1152 shards already complete" in again.stderr


def test_killed_upload_rerun_finishes_without_rewriting_finished_objects(
        gcs_emulator, sample_release, local_records, tmp_path):
    raw, _ = sample_release
    dst = _new_bucket(gcs_emulator)
    scratch = tmp_path / "scratch"
    cmd = [python(), "official/imagenet_to_gcs.py", "--raw_data_dir=" + raw,
           "--local_scratch_dir=" + str(scratch), "--gcs_upload", "--project=test-project",
           "--gcs_output_path=gs://%s/run" % dst, "--num_workers=2"]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    client = gcs_emulator.client()
    deadline = time.monotonic() + 300
    try:
        while len(list(client.list_blobs(dst, prefix="run/"))) < 100:
            assert proc.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {b.name: b.generation for b in client.list_blobs(dst, prefix="run/")}
    assert 100 <= len(before) < 1152
    r = run_cmd(cmd)
    assert r.returncode == 0, r.stderr
    assert "%d shards already complete" % len(before) in r.stderr
    after = {b.name: b.generation for b in client.list_blobs(dst, prefix="run/")}
    assert all(after[name] == gen for name, gen in before.items())
    assert _names_and_bytes(gcs_emulator, dst, "run/") == local_records
    # nothing of the shards went to the scratch directory
    assert not [n for _, _, files in os.walk(str(scratch)) for n in files
                if "-of-0" in n]


def test_an_existing_object_stops_the_run_and_stays_as_it_was(
        gcs_emulator, sample_release, tmp_path):
    raw, _ = sample_release
    dst = _new_bucket(gcs_emulator)
    blob = gcs_emulator.client().bucket(dst).blob("out/validation-00005-of-00128")
    blob.upload_from_string(b"not ours")
    gen = gcs_emulator.client().bucket(dst).get_blob(blob.name).generation
    r = run_cmd(["./build.sh", raw, "-o", "gs://%s/out" % dst, "-j", "0"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "build.sh: error: gs://%s/out/validation-00005-of-00128 already exists and is not "
        "a shard of this conversion (another plan or another tool wrote it); objects are "
        "never overwritten. Delete them (gcloud storage rm 'gs://%s/out/*') or choose "
        "another prefix." % (dst, dst))
    objs = gcs_emulator.objects(dst)
    assert objs == {blob.name: (b"not ours", gen)}     # nothing else written either


def test_truncated_tar_object_is_one_line(gcs_emulator, sample_release, tmp_path):
    raw, _ = sample_release
    src = _new_bucket(gcs_emulator)
    b = gcs_emulator.client().bucket(src)
    with open(os.path.join(raw, TARS[0]), "rb") as f:
        data = f.read()
    b.blob("r/" + TARS[0]).upload_from_string(data[:len(data) // 2])
    b.blob("r/" + TARS[1]).upload_from_filename(os.path.join(raw, TARS[1]))
    r = run_cmd(["./build.sh", "gs://%s/r" % src, "-o", str(tmp_path / "o"), "-j", "0"],
                env=_env(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("build.sh: error: gs://%s/r/%s" % (src, TARS[0])), last
    assert "truncated" in last and "complete copy" in last


def test_missing_bucket_is_one_line(gcs_emulator, sample_release, tmp_path):
    raw, _ = sample_release
    for args in (["gs://no-such-bucket/r", "-o", str(tmp_path / "o")],
                 [raw, "-o", "gs://no-such-bucket/out"]):
        r = run_cmd(["./build.sh"] + args + ["-j", "0"], env=_env(tmp_path))
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1] == (
            "build.sh: error: bucket gs://no-such-bucket does not exist (or these "
            "credentials cannot see it): create it (gcloud storage buckets create "
            "gs://no-such-bucket) or fix the path.")
    r = run_cmd(["./build.sh", "gs://%s/nothing-here" % _new_bucket(gcs_emulator),
                 "-j", "0"], env=_env(tmp_path))
    assert r.returncode == 1 and "missing gs://" in r.stderr and "Traceback" not in r.stderr


def test_ranged_reads_against_the_emulator_are_exact(gcs_emulator):
    name = _new_bucket(gcs_emulator)
    data = os.urandom(4096)
    gcs_emulator.client().bucket(name).blob("o").upload_from_string(data)
    store = storage.GcsStore("test-project")
    assert store.read("gs://%s/o" % name, 1000, 1) == data[1000:1001]
    assert store.read("gs://%s/o" % name, 0, 4096) == data
    info = store.stat("gs://%s/o" % name)
    assert info.size == 4096 and info.crc32c == crc32c.value(data)
    with pytest.raises(UserError, match="ends at byte 4096"):
        store.read("gs://%s/o" % name, 4000, 200)
    assert store.stat("gs://%s/absent" % name) is None
    created = store.create("gs://%s/new" % name, io.BytesIO(b"abc"), 3,
                           crc32c.value(b"abc"), {"k": "v"})
    assert created.size == 3 and created.crc32c == crc32c.value(b"abc")
    with pytest.raises(UserError):   # the service refuses a wrong CRC32C
        store.create("gs://%s/bad" % name, io.BytesIO(b"abc"), 3, 12345)


@pytest.fixture(scope="module")
def slim_local(slim_release, tmp_path_factory):
    """The slim driver run on a local copy of the sample with boxes: (dir, shards)."""
    raw, _ = slim_release
    d = str(tmp_path_factory.mktemp("slim") / "release")
    shutil.copytree(raw, d)
    r = run_cmd(["slim/download_and_convert_imagenet.sh", d, "-j", "2", "--no-verify"])
    assert r.returncode == 0, r.stderr
    shards = {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)
              if n.startswith(("train-", "validation-"))}
    assert len(shards) == 1024 + 128
    return d, shards


@pytest.fixture(scope="module")
def slim_bucket(gcs_emulator, slim_release):
    raw, _ = slim_release
    name = _new_bucket(gcs_emulator)
    # the same files as the local copy: synset_labels.txt labels validation in both
    gcs_emulator.upload_dir(name, "d/", raw, TARS + [bbox.ARCHIVE, "synset_labels.txt"])
    return name


def test_slim_driver_reads_the_three_archives_from_a_bucket(
        gcs_emulator, slim_bucket, slim_local, tmp_path):
    local_dir, shards = slim_local
    r = run_cmd(["slim/download_and_convert_imagenet.sh", "gs://%s/d" % slim_bucket,
                 "-j", "2", "--no-verify"], env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    got = _names_and_bytes(gcs_emulator, slim_bucket, "d/")
    for archive in TARS + [bbox.ARCHIVE, "synset_labels.txt"]:
        got.pop(archive)
    assert got == shards
    csv = os.path.join(str(tmp_path / "index"), "raw-data", bbox.CSV_NAME)
    with open(csv) as a, open(os.path.join(local_dir, "raw-data", bbox.CSV_NAME)) as b:
        assert a.read() == b.read()


def test_build_imagenet_data_source_and_output_in_buckets(
        gcs_emulator, slim_bucket, slim_local, tmp_path):
    local_dir, shards = slim_local
    dst = _new_bucket(gcs_emulator)
    r = run_cmd([python(), "slim/datasets/build_imagenet_data.py",
                 "--source_dir=gs://%s/d" % slim_bucket, "--output_directory=gs://%s/s" % dst,
                 "--bounding_box_file=" + os.path.join(local_dir, "raw-data", bbox.CSV_NAME),
                 "--num_workers=2"], env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "verified:" in r.stderr
    assert _names_and_bytes(gcs_emulator, dst, "s/") == shards


# ----------------------------------------------------------------- in-worker check

def _convert_to_fake_bucket(raw, out, log):
    from ilsvrc import pool
    from ilsvrc.formats import official
    with pool.Pool(0) as runner:
        return official.convert(raw, out, runner, log=log)


def test_a_gs_shard_is_checked_from_its_buffer_before_it_is_uploaded(
        fake, sample_release, monkeypatch):
    raw, _ = sample_release
    log = io.StringIO()
    splits, stats = _convert_to_fake_bucket(raw, "gs://b/out", log)
    assert len([p for p in fake.objects if p.startswith("gs://b/out/")]) == 1024 + 128
    assert sum(stats["checked"].values()) == sum(s.count for s in splits)
    assert "from its upload buffer, before it was uploaded" in log.getvalue()

    # a record whose image bytes differ from the planned ones (CRCs still right) is
    # caught by the worker's read-back of the buffer, and that shard never uploaded
    real_write, spoiled = upload.ShardWriter.write, []

    def spoil(self, payload):
        if not spoiled:
            at = payload.rfind(b"\xff\xd9")           # the JPEG's end-of-image marker
            payload = payload[:at] + b"\xff\xd8" + payload[at + 2:]
            spoiled.append(self.path)
        real_write(self, payload)
    monkeypatch.setattr(upload.ShardWriter, "write", spoil)
    with pytest.raises(UserError) as err:
        _convert_to_fake_bucket(raw, "gs://b/other", io.StringIO())
    assert "read back after writing" in str(err.value) and spoiled
    assert spoiled[0] not in fake.objects


def test_dali_index_with_a_gs_output_is_refused_in_one_line(fake, sample_release):
    from ilsvrc import pool
    from ilsvrc.formats import official
    with pool.Pool(0) as runner, pytest.raises(UserError) as err:
        official.convert(sample_release[0], "gs://b/out", runner, dali_index=True)
    assert "--dali-index" in str(err.value) and "\n" not in str(err.value)
    assert not fake.objects
