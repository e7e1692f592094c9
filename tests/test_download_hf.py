"""./download.sh hf (ilsvrc/cli/download.py, ilsvrc/sources/hub.py) against a fake Hub
on 127.0.0.1 (tests/fakehub.py), driving the real huggingface_hub client; and
./download.sh kaggle reaching metalhead/download.sh.  No network."""

import errno
import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO

if importlib.util.find_spec("huggingface_hub") is None:
    pytest.skip("huggingface_hub (requirements-hf.txt, ./setup.sh --hf) is not installed",
                allow_module_level=True)

import fakehub  # noqa: E402
from ilsvrc.errors import UserError  # noqa: E402
from ilsvrc.sources import hub as hubmod  # noqa: E402

DOWNLOAD = os.path.join(REPO, "download.sh")
TOKEN = "hf_fAkEt0kenNeverPrinted4242"
MAIN = "1" * 40                      # today's layout: parquet shards
OLD = "0" * 40                       # an older commit: the tar.gz layout
RECORD = ".ilsvrc-hf-download.json"


def _bytes(n, seed):
    out, block = bytearray(), hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def _repo():
    common = {"README.md": b"---\nlicense: other\n---\n# ImageNet\n",
              ".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n",
              "classes.py": b"IMAGENET2012_CLASSES = {'n01440764': 'tench'}\n"}
    main = dict(common, **{
        "data/train-00000-of-00002.parquet": _bytes(3000, "t0"),
        "data/train-00001-of-00002.parquet": _bytes(2500, "t1"),
        "data/validation-00000-of-00001.parquet": _bytes(1800, "v0"),
        "data/test-00000-of-00001.parquet": _bytes(1200, "s0")})
    old = dict(common, **{"imagenet-1k.py": b"# loading script\n",
                          "data/train_images_0.tar.gz": _bytes(900, "o0"),
                          "data/train_images_1.tar.gz": _bytes(800, "o1"),
                          "data/val_images.tar.gz": _bytes(700, "ov"),
                          "data/test_images.tar.gz": _bytes(600, "ot")})
    return {MAIN: main, OLD: old}


@pytest.fixture
def hub():
    h = fakehub.FakeHub(_repo(), {"main": MAIN, "v1.0-tars": OLD}, TOKEN).start()
    yield h
    h.stop()


def make_env(tmp_path, endpoint, token=True):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGING_FACE_")) and "proxy" not in k.lower()}
    home = tmp_path / "hf-home"
    home.mkdir(exist_ok=True)
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="5",
               HF_HUB_DOWNLOAD_TIMEOUT="5", NO_PROXY="*", no_proxy="*")
    if token:
        env["HF_TOKEN"] = TOKEN
    return env


def run(args, env, **kw):
    return subprocess.run(["bash", DOWNLOAD, "hf"] + [str(a) for a in args], env=env,
                          capture_output=True, text=True, timeout=60, **kw)


def assert_one_line(r, *needles, alone=True):
    """The run failed with one error line, last on stderr; `alone`: and nothing else
    (a failure once files are being fetched follows the progress lines)."""
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 or not alone, r.stderr
    assert lines[-1].startswith("download.sh hf: error: "), r.stderr
    assert sum("error" in x.lower() for x in lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    assert "Traceback" not in r.stdout + r.stderr
    assert TOKEN not in r.stdout + r.stderr


def files_under(d):
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, d)] = p
    return out


def data_files(d):
    return sorted(p for p in files_under(d) if not p.startswith(".") and "/." not in p)


def test_default_splits_get_train_and_validation_and_the_commit(hub, tmp_path):
    out = tmp_path / "dl"
    r = run([out], make_env(tmp_path, hub.url))
    assert r.returncode == 0, r.stderr
    repo = _repo()[MAIN]
    assert data_files(out) == ["classes.py", "data/train-00000-of-00002.parquet",
                               "data/train-00001-of-00002.parquet",
                               "data/validation-00000-of-00001.parquet"]
    for name in data_files(out):
        assert (out / name).read_bytes() == repo[name]
    record = json.loads((out / RECORD).read_text())
    assert record["commit"] == MAIN and record["revision"] == "main"
    assert record["repo"] == "ILSVRC/imagenet-1k" and record["complete"] is True
    assert record["splits"] == ["train", "validation"] and record["when"]
    assert {f["path"]: f["size"] for f in record["files"]} == {
        n: len(repo[n]) for n in data_files(out)}
    # The token went to the Hub, and only there (not to the CDN the LFS files come from).
    assert all(h.get("authorization") == "Bearer " + TOKEN for _, _, _, h in
               hub.requests(server="hub"))
    assert hub.requests(server="cdn") and all(
        "authorization" not in h for _, _, _, h in hub.requests(server="cdn"))
    assert "Traceback" not in r.stderr and TOKEN not in r.stdout + r.stderr


def test_rerun_fetches_and_hashes_nothing(hub, tmp_path):
    out, env = tmp_path / "dl", make_env(tmp_path, hub.url)
    assert run([out], env).returncode == 0
    stamps = {p: os.stat(full).st_mtime_ns for p, full in files_under(out).items()
              if not p.startswith(".cache")}
    del hub.log[:]
    r = run([out], env)
    assert r.returncode == 0, r.stderr
    assert hub.file_requests() == []                       # only the revision lookup
    assert len(hub.requests(path="/api/datasets/")) == 1
    assert "0 fetched and 0 hashed" in r.stderr
    for p, mtime in stamps.items():
        if p != RECORD:
            assert os.stat(out / p).st_mtime_ns == mtime, p


def test_a_file_changed_after_the_check_is_hashed_again_and_caught(hub, tmp_path):
    out, env = tmp_path / "dl", make_env(tmp_path, hub.url)
    assert run([out], env).returncode == 0
    victim = out / "data" / "train-00001-of-00002.parquet"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF                                       # same size, new mtime
    before = victim.stat().st_mtime_ns
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(before + 10**9, before + 10**9))  # whatever the clock's grain
    r = run([out], env)
    assert_one_line(r, str(victim), "SHA-256", "delete %s and rerun" % victim, alone=False)
    assert json.loads((out / RECORD).read_text())["complete"] is False


def test_dropped_connection_resumes_with_a_range_request(hub, tmp_path):
    big = "data/train-00000-of-00002.parquet"
    hub.commits[MAIN][big] = _bytes(12 << 20, "big")       # past the client's 10 MiB chunk
    hub.drop_once, hub.drop_after = {big}, 11 << 20
    out = tmp_path / "dl"
    r = run([out], make_env(tmp_path, hub.url))
    assert r.returncode == 0, r.stderr
    assert (out / big).read_bytes() == hub.commits[MAIN][big]
    gets = [h.get("range") for _, m, p, h in hub.requests(server="cdn", method="GET")
            if p.endswith(hashlib.sha256(hub.commits[MAIN][big]).hexdigest())]
    assert gets[0] is None and len(gets) == 2
    assert gets[1].startswith("bytes=") and int(gets[1][6:].rstrip("-")) > 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_download_resumes_on_rerun(hub, tmp_path, sig):
    stalled = "data/train-00001-of-00002.parquet"
    hub.stall = {stalled}
    out, env = tmp_path / "dl", make_env(tmp_path, hub.url)
    proc = subprocess.Popen(["bash", DOWNLOAD, "hf", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert hub.stalled.wait(30), "the download never reached the stalled file"
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "rerun the same command" in err, err
        assert "Traceback" not in err
    assert not (out / stalled).exists()                    # never under its name half-done
    assert (out / "data" / "train-00000-of-00002.parquet").exists()
    hub.stall = set()
    hub.release.set()
    del hub.log[:]
    r = run([out], env)
    assert r.returncode == 0, r.stderr
    repo = _repo()[MAIN]
    for name in data_files(out):
        assert (out / name).read_bytes() == repo[name]
    fetched = {p.rsplit("/", 1)[-1] for _, _, p, _ in hub.file_requests()}
    assert "train-00000-of-00002.parquet" not in fetched and "classes.py" not in fetched
    assert stalled.rsplit("/", 1)[-1] in fetched
    assert json.loads((out / RECORD).read_text())["complete"] is True
    # a kill -9 leaves the client's partial copy behind; the finished rerun removes it
    assert [p for p in files_under(out) if p.endswith(".incomplete")] == []


def test_hash_mismatch_is_one_line_naming_the_file(hub, tmp_path):
    bad = "data/validation-00000-of-00001.parquet"
    hub.wrong_sha256 = {bad}
    out = tmp_path / "dl"
    r = run([out], make_env(tmp_path, hub.url))
    assert_one_line(r, str(out / bad), "SHA-256", "differs from the Hub's",
                    "delete %s and rerun" % (out / bad), alone=False)
    assert json.loads((out / RECORD).read_text())["complete"] is False


def test_no_token(hub, tmp_path):
    r = run([tmp_path / "dl"], make_env(tmp_path, hub.url, token=False))
    assert_one_line(r, "HF_TOKEN", "hf auth login",
                    "https://huggingface.co/datasets/ILSVRC/imagenet-1k")
    assert hub.log == []                                    # nothing was asked


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("case", ["gated", "revision", "repo", "bad-token", "unreachable"])
def test_hub_refusals_are_one_line(hub, tmp_path, case):
    env, args = make_env(tmp_path, hub.url), [tmp_path / "dl"]
    if case == "gated":
        hub.gated = True
        needles = ["gated", "accept the terms", "https://huggingface.co/datasets/ILSVRC/imagenet-1k"]
    elif case == "revision":
        args += ["--revision", "v9-gone"]
        needles = ["revision 'v9-gone' not found", "--revision"]
    elif case == "repo":
        hub.repo_missing = True
        needles = ["ILSVRC/imagenet-1k not found at %s" % hub.url, "HF_TOKEN"]
    elif case == "bad-token":
        env["HF_TOKEN"] = "hf_" + "x" * 30
        needles = ["rejected the token", "HF_TOKEN"]
    else:
        url = "http://127.0.0.1:%d" % _closed_port()
        env["HF_ENDPOINT"] = url
        needles = ["cannot reach the Hub at %s" % url]
    r = run(args, env)
    assert_one_line(r, *needles, alone=case != "gated")   # gated: known at the first file
    assert data_files(tmp_path / "dl") == [] if (tmp_path / "dl").exists() else True


def test_older_revision_tar_layout_only_the_asked_splits(hub, tmp_path):
    out = tmp_path / "dl"
    r = run([out, "--revision", "v1.0-tars", "--splits", "validation,test"],
            make_env(tmp_path, hub.url))
    assert r.returncode == 0, r.stderr
    assert data_files(out) == ["classes.py", "data/test_images.tar.gz",
                               "data/val_images.tar.gz"]
    record = json.loads((out / RECORD).read_text())
    assert record["revision"] == "v1.0-tars" and record["commit"] == OLD
    assert (out / "data" / "val_images.tar.gz").read_bytes() == _repo()[OLD]["data/val_images.tar.gz"]


def test_token_from_the_login_store_is_never_echoed_or_written(hub, tmp_path):
    env = make_env(tmp_path, hub.url, token=False)
    (tmp_path / "hf-home" / "token").write_text(TOKEN)     # where `hf auth login` keeps it
    out = tmp_path / "dl"
    r = run([out, "--splits", "test"], env)
    assert r.returncode == 0, r.stderr
    assert hub.requests(server="hub")[0][3].get("authorization") == "Bearer " + TOKEN
    assert TOKEN not in r.stdout + r.stderr
    written = files_under(out)
    assert RECORD in written and any(p.endswith(".metadata") for p in written)
    for p in written.values():
        with open(p, "rb") as f:
            assert TOKEN.encode() not in f.read(), p
    # and it is refused on the command line, without being echoed
    r = run([out, "--token", TOKEN], env)
    assert r.returncode == 2 and TOKEN not in r.stdout + r.stderr
    r = run([out, TOKEN], env)
    assert r.returncode == 2 and TOKEN not in r.stdout + r.stderr


def test_without_the_client_one_line_says_setup_hf(tmp_path):
    shadow = tmp_path / "shadow" / "huggingface_hub"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named huggingface_hub')\n")
    env = make_env(tmp_path, "http://127.0.0.1:9")
    env["PYTHONPATH"] = str(shadow.parent)
    r = run([tmp_path / "dl"], env)
    assert_one_line(r, "./setup.sh --hf")


def test_split_missing_at_the_revision_names_what_it_has():
    files = [hubmod.RemoteFile("data/train-00000-of-00001.parquet", 5, "a" * 64, "b"),
             hubmod.RemoteFile("classes.py", 5, None, "c")]
    assert [f.path for f in hubmod.select(files, ["train"], "main")] == [
        "classes.py", "data/train-00000-of-00001.parquet"]
    with pytest.raises(UserError, match=r"holds no validation files.*it holds: train"):
        hubmod.select(files, ["train", "validation"], "main")


def test_disk_full_is_one_line(tmp_path):
    f = hubmod.RemoteFile("data/train_images_0.tar.gz", 30 * 10**9, "a" * 64, None)
    with pytest.raises(UserError, match="need 30.0 GB .* 1.0 GB free"):
        hubmod.check_space(str(tmp_path), [f], free=10**9)
    msg = hubmod.explain(OSError(errno.ENOSPC, "No space left on device"),
                         "https://huggingface.co", "main", str(tmp_path))
    assert msg.startswith("%s: disk full" % tmp_path) and "rerun" in msg


def test_kaggle_route_reaches_metalhead_download(tmp_path):
    r = subprocess.run(["bash", DOWNLOAD, "kaggle", "--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("usage: metalhead/download.sh DIR")
    r = subprocess.run(["bash", DOWNLOAD, "kaggle", str(tmp_path), "extra"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage: metalhead/download.sh DIR" in r.stderr
    if importlib.util.find_spec("kaggle") is None:
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    (tmp_path / "home").mkdir()
    (tmp_path / "conf").mkdir()
    env.update(HOME=str(tmp_path / "home"), KAGGLE_CONFIG_DIR=str(tmp_path / "conf"),
               XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"))
    r = subprocess.run(["bash", DOWNLOAD, "kaggle", str(tmp_path / "dl")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "kaggle.json" in r.stderr and "Traceback" not in r.stderr


def test_download_sh_names_its_sources():
    r = subprocess.run(["bash", DOWNLOAD, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "./download.sh hf DIR" in r.stdout
    r = subprocess.run(["bash", DOWNLOAD, "s3", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown source 's3'" in r.stderr
