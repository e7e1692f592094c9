"""Bad inputs, seen as the user sees them: through ./build.sh in a subprocess.

Every case must end with one `build.sh: error: ...` line naming the input, a
non-zero exit, no traceback, and no shard under a final name that is not complete
(every final-named shard left behind is byte-identical to the one a clean run of
the same plan writes).
"""

import io
import os
import random
import resource
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import REPO, run_cmd, shard_records
from ilsvrc.sources import tarindex
from ilsvrc.testing import sample

BUILD = os.path.join(REPO, "build.sh")
TRAIN_TAR, VAL_TAR = tarindex.TRAIN_TAR, tarindex.VAL_TAR


# --------------------------------------------------------------------------- helpers

def build(src, out, *extra, workers=0, **kw):
    return run_cmd([BUILD, src, "-o", out, "-j", str(workers)] + list(extra), **kw)


def assert_user_error(result, *words):
    """One clear error line naming what is wrong; non-zero exit; no traceback."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("build.sh: error: "), result.stderr
    for word in words:
        assert word in last, (word, last)
    if os.environ.get("ERRLOG"):
        with open(os.environ["ERRLOG"], "a") as f:
            f.write(last + "\n")
    return last


def final_shards(out):
    """{relative path: bytes} of every file under `out` with a final shard name."""
    found = {}
    for sub in ("train", "validation"):
        d = os.path.join(out, sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                if name.startswith(sub + "-"):
                    with open(os.path.join(d, name), "rb") as f:
                        found[sub + "/" + name] = f.read()
    return found


def shard_names(out):
    return [n for sub in ("train", "validation") if os.path.isdir(os.path.join(out, sub))
            for n in os.listdir(os.path.join(out, sub)) if n.startswith(sub + "-")]


def assert_only_complete_shards(out, reference):
    """Every final-named shard in `out` is complete: equal to the clean run's."""
    for name, payload in final_shards(out).items():
        assert payload == reference[name], "%s is not the complete shard" % name


def read_members(source):
    """[(TarInfo, bytes or None)] of a tar file path or tar bytes."""
    fileobj = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with fileobj, tarfile.open(fileobj=fileobj, mode="r:") as tar:
        return [(info, tar.extractfile(info).read() if info.isreg() else None)
                for info in tar]


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, payload in members:
            info = _copy_info(info)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _copy_info(info):
    new = tarfile.TarInfo(info.name)
    for attr in ("size", "mtime", "mode", "type", "linkname", "uid", "gid"):
        setattr(new, attr, getattr(info, attr))
    return new


def member(name, payload=None, link=None):
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = 1334000000, 0o644
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    return info, payload


def edit_tar(path, edit):
    """Rewrite the tar at `path` with `edit(members) -> members`."""
    members = edit(read_members(path))
    with open(path, "wb") as f:
        f.write(tar_bytes(members))


def edit_inner(release, synset, edit):
    """Rewrite inner tar `<synset>.tar` of the training tar with `edit`."""
    def outer(members):
        out = []
        for info, payload in members:
            if info.name == synset + ".tar":
                payload = edit(read_members(payload))
                payload = payload if isinstance(payload, bytes) else tar_bytes(payload)
            out.append((info, payload))
        return out
    edit_tar(os.path.join(release, TRAIN_TAR), outer)


def replace_image(members, name, change):
    return [(info, change(payload) if info.name == name else payload)
            for info, payload in members]


def first_synset(manifest):
    return sorted(manifest["train"])[0]


@pytest.fixture(scope="module")
def reference(official_sample):
    """Shards of a clean run on the unmodified sample: {relative path: bytes}."""
    return final_shards(official_sample)


@pytest.fixture
def release(release_copy):
    """(directory, manifest, output directory) of a private copy of the sample."""
    src, manifest = release_copy
    return src, manifest, os.path.join(os.path.dirname(src), "out")


# --------------------------------------------------------------------------- tars

@pytest.mark.parametrize("cut", ["middle", "end-marker"])
def test_truncated_outer_tar(release, cut):
    src, _, out = release
    path = os.path.join(src, TRAIN_TAR)
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
    if cut == "middle":
        keep = os.path.getsize(path) // 2
    else:  # every member complete, but no end-of-archive marker
        keep = last.offset_data + (last.size + 511) // 512 * 512
    with open(path, "r+b") as f:
        f.truncate(keep)
    last = assert_user_error(build(src, out), TRAIN_TAR, "truncated")
    assert "complete copy" in last
    assert not final_shards(out)


@pytest.mark.parametrize("workers", [0, 2])
def test_truncated_inner_tar(release, workers):
    """Inner tars are indexed in worker processes: the error must cross over intact."""
    src, manifest, out = release
    synset = first_synset(manifest)
    edit_inner(src, synset, lambda m: tar_bytes(m)[:len(tar_bytes(m)) // 2])
    assert_user_error(build(src, out, workers=workers), TRAIN_TAR, synset + ".tar",
                      "truncated")
    assert not final_shards(out)


def test_empty_inner_tar(release):
    src, manifest, out = release
    synset = first_synset(manifest)
    edit_inner(src, synset, lambda m: [])
    assert_user_error(build(src, out), synset + ".tar", "no *.JPEG")


def test_duplicate_member(release):
    src, manifest, out = release
    synset = first_synset(manifest)
    name = manifest["train"][synset][0]
    edit_inner(src, synset, lambda m: m + [(i, p) for i, p in m if i.name == name])
    assert_user_error(build(src, out), synset + ".tar", name, "twice")
    edit_inner(src, synset, lambda m: m[:-1])   # back to clean
    edit_tar(os.path.join(src, VAL_TAR), lambda m: m + m[:1])
    assert_user_error(build(src, out), VAL_TAR, "twice")


UNSAFE = [
    ("dotdot", lambda p: member("../escaped.JPEG", p)),
    ("absolute", lambda p: member("/tmp/ilsvrc-escaped.JPEG", p)),
    ("symlink", lambda p: member("n00000000_1.JPEG", b"", link="/etc/passwd")),
]


@pytest.mark.parametrize("where", ["inner", "validation", "outer"])
@pytest.mark.parametrize("kind", [u[0] for u in UNSAFE])
@pytest.mark.parametrize("extract", [False, True])
def test_unsafe_members_refused(release, where, kind, extract):
    src, manifest, out = release
    make = dict(UNSAFE)[kind]
    payload = sample.make_image(random.Random(5), "rgb", 16, 16)
    if where == "inner":
        edit_inner(src, first_synset(manifest), lambda m: m + [make(payload)])
    elif where == "validation":
        edit_tar(os.path.join(src, VAL_TAR), lambda m: m + [make(payload)])
    else:
        info, data = make(tar_bytes([]))
        info.name = info.name.replace(".JPEG", ".tar")
        edit_tar(os.path.join(src, TRAIN_TAR), lambda m: m + [(info, data)])
    before = set(os.listdir(src))
    args = ["--extract"] if extract else []
    last = assert_user_error(build(src, out, *args), "refusing")
    assert (TRAIN_TAR if where != "validation" else VAL_TAR) in last
    # nothing written anywhere: not beside the tars, not outside them
    assert set(os.listdir(src)) == before
    assert not os.path.exists(os.path.join(os.path.dirname(src), "escaped.JPEG"))
    assert not os.path.exists("/tmp/ilsvrc-escaped.JPEG")
    assert not final_shards(out)


# --------------------------------------------------------------------------- images

def _garble(data):
    return data[:2] + bytes(b ^ 0x5A for b in data[2:40]) + data[40:]


def _halve(data):
    return data[:len(data) // 2]


def _png(_):
    return sample.make_image(random.Random(3), "png", 20, 20)


def _text(_):
    return b"<html>404 Not Found</html>\n"


@pytest.mark.parametrize("change,check,words", [
    (_garble, "header", ["corrupt"]),
    (_halve, "header", ["truncated"]),
    (_halve, "decode", ["cannot be decoded"]),
    (_png, "header", ["PNG"]),
    (_text, "header", ["not a JPEG"]),
])
def test_bad_training_image(release, reference, change, check, words):
    src, manifest, out = release
    synset = first_synset(manifest)
    name = manifest["train"][synset][1]
    edit_inner(src, synset, lambda m: replace_image(m, name, change))
    last = assert_user_error(build(src, out, "--check", check), synset + ".tar/" + name,
                             *words)
    assert "good copy" in last
    assert_only_complete_shards(out, reference)


def test_cmyk_outside_known_list_is_kept(release, tf):
    """A CMYK JPEG not on the re-encode list is stored unchanged, as upstream does."""
    src, manifest, out = release
    synset = first_synset(manifest)
    name = synset + "_999999.JPEG"
    cmyk = sample.make_image(random.Random(9), "cmyk", 24, 16)
    edit_inner(src, synset, lambda m: m + [member(name, cmyk)])
    result = build(src, out, "--check", "decode")
    assert result.returncode == 0, result.stderr
    stored = []
    for shard in sorted(final_shards(out)):
        for feats in shard_records(os.path.join(out, shard)):
            if feats["image/filename"][1][0] == name.encode():
                stored.append(feats)
    assert len(stored) == 1
    assert stored[0]["image/encoded"][1][0] == cmyk
    assert stored[0]["image/class/synset"][1][0] == synset.encode()


# --------------------------------------------------------------------------- labels

def _write_labels(src, lines):
    with open(os.path.join(src, "synset_labels.txt"), "w") as f:
        f.write("".join(line + "\n" for line in lines))


def test_label_file_shorter_than_numbers(release):
    src, manifest, out = release
    _write_labels(src, manifest["val"][:5])
    assert_user_error(build(src, out), "synset_labels.txt", "has 5 lines",
                      "ILSVRC2012_val_00000006.JPEG")
    assert not final_shards(out)


def test_label_file_longer_is_fine(release, reference):
    """Labels go by the number in the name: extra lines are unused, by design."""
    src, manifest, out = release
    _write_labels(src, manifest["val"] + manifest["val"][:3])
    result = build(src, out)
    assert result.returncode == 0, result.stderr
    assert final_shards(out) == reference


def test_partial_validation_set_keeps_labels_by_number(release, tf):
    """Upstream labels a partial set by position and shifts every label after a gap;
    here image number k always gets line k of the label file."""
    src, manifest, out = release
    keep = {1, 2, 5, 9, 12}
    edit_tar(os.path.join(src, VAL_TAR),
             lambda m: [(i, p) for i, p in m if int(i.name[15:23]) in keep])
    result = build(src, out)
    assert result.returncode == 0, result.stderr
    got = {}
    for shard in final_shards(out):
        if shard.startswith("validation/"):
            for feats in shard_records(os.path.join(out, shard)):
                got[int(feats["image/filename"][1][0][15:23])] = \
                    feats["image/class/synset"][1][0].decode()
    assert got == {k: manifest["val"][k - 1] for k in keep}


def _make_tree(src, manifest, rename_val):
    """Extract the sample into train/<synset>/ and validation/ under a new directory."""
    tree = os.path.join(os.path.dirname(src), "tree")
    for info, inner in read_members(os.path.join(src, TRAIN_TAR)):
        d = os.path.join(tree, "train", info.name[:-4])
        os.makedirs(d)
        for img, payload in read_members(inner):
            with open(os.path.join(d, img.name), "wb") as f:
                f.write(payload)
    os.makedirs(os.path.join(tree, "validation"))
    for info, payload in read_members(os.path.join(src, VAL_TAR)):
        with open(os.path.join(tree, "validation", rename_val(info.name)), "wb") as f:
            f.write(payload)
    return tree


@pytest.mark.parametrize("extra", [-1, 1])
def test_unnumbered_validation_count_mismatch(release, extra):
    src, manifest, out = release
    tree = _make_tree(src, manifest, lambda n: "img_" + n[-10:])
    lines = manifest["val"] + manifest["val"][:1] if extra > 0 else manifest["val"][:-1]
    _write_labels(tree, lines)
    n = len(manifest["val"])
    assert_user_error(build(tree, out), "synset_labels.txt",
                      "has %d lines for %d validation images" % (n + extra, n))
    assert not final_shards(out)


def test_synset_missing_from_metadata(release, tmp_path):
    src, manifest, _ = release
    synset = sorted(manifest["train"])[0]
    metadata = tmp_path / "metadata.txt"
    with open(os.path.join(REPO, "slim", "datasets", "imagenet_metadata.txt")) as f:
        metadata.write_text("".join(l for l in f if not l.startswith(synset + "\t")))
    out = tmp_path / "slim-out"
    out.mkdir()
    r = run_cmd([sys.executable, "slim/datasets/build_imagenet_data.py", "--source_dir=" + src,
                 "--output_directory=" + str(out), "--imagenet_metadata_file=%s" % metadata,
                 "--bounding_box_file=", "--validation_labels_file=" +
                 os.path.join(src, "synset_labels.txt"), "--num_workers=0"])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("build_imagenet_data.py: error: ") and str(metadata) in last
    assert synset in last
    assert not [n for n in os.listdir(out) if not n.startswith(".")]


# --------------------------------------------------------------------------- output

def test_output_under_a_regular_file(release):
    src, _, out = release
    blocker = os.path.join(os.path.dirname(src), "a-file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    assert_user_error(build(src, os.path.join(blocker, "sub")), "a-file/sub",
                      "output directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_output_directory_read_only(release):
    src, _, out = release
    os.makedirs(out)
    os.chmod(out, 0o555)
    try:
        assert_user_error(build(src, out), out, "output directory")
    finally:
        os.chmod(out, 0o755)


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))


@pytest.mark.parametrize("workers", [0, 2])
def test_disk_full_during_a_shard(release, reference, workers):
    """RLIMIT_FSIZE makes writes past 3000 bytes fail with EFBIG, like a full disk."""
    src, _, out = release
    result = build(src, out, workers=workers, preexec_fn=_limit_file_size)
    last = assert_user_error(result, "file too large", "while writing " + out)
    assert "-of-" in last.split("while writing ")[1]           # names the shard
    assert_only_complete_shards(out, reference)
    # the same command, with room again, finishes the job
    result = build(src, out, workers=workers)
    assert result.returncode == 0, result.stderr
    assert final_shards(out) == reference


# --------------------------------------------------------------------------- kill -9

def test_kill_9_then_rerun_is_byte_identical(tmp_path):
    src = str(tmp_path / "big")
    sample.generate(src, classes=8, per_class=40, val=64, max_width=160, max_height=160)
    clean, out = str(tmp_path / "clean"), str(tmp_path / "killed")
    result = build(src, clean, "--no-verify", workers=2)
    assert result.returncode == 0, result.stderr
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([BUILD, src, "-o", out, "-j", "2", "--no-verify"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while len(shard_names(out)) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(final_shards(out)) < len(final_shards(clean)), "killed too late"
    result = build(src, out, workers=2)
    assert result.returncode == 0, result.stderr
    assert "already complete" in result.stderr
    assert final_shards(out) == final_shards(clean)
    leftovers = [n for sub in ("train", "validation")
                 for n in os.listdir(os.path.join(out, sub)) if n.endswith(".partial")]
    assert not leftovers


def _workers_of(pid):
    """Pids of the multiprocessing worker processes started by `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmd:
            found.append(int(entry))
    return found


def test_worker_killed(release, reference):
    """The OOM killer takes one worker: one clear line, and a rerun finishes the job."""
    src, _, out = release
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([BUILD, src, "-o", out, "-j", "2"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not shard_names(out) and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = _workers_of(proc.pid)
        assert workers and proc.poll() is None, "the run finished too early"
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    assert_user_error(result, "worker process died", "rerun")
    assert_only_complete_shards(out, reference)
    result = build(src, out, workers=2)
    assert result.returncode == 0, result.stderr
    assert final_shards(out) == reference
