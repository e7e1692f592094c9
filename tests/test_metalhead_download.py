"""metalhead/download.sh + kaggle_download.py against a stub Kaggle server (no network).

The official client only talks to https://api.kaggle.com, or to http://localhost (port
80) when its "--local" switch is on; our module turns that on when
METALHEAD_KAGGLE_LOCALHOST=1. So these tests bind 127.0.0.1:80 and skip when they can't.
"""
import base64
import http.client
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

# Only look for the client here: importing it has side effects (config folder, auth help).
if importlib.util.find_spec("kaggle") is None:
    pytest.skip("the kaggle client (requirements-test.txt) is not installed", allow_module_level=True)

import kaggle_stub  # noqa: E402
from kaggle_stub import PAYLOAD, ZIP_NAME  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(REPO, "metalhead", "kaggle_download.py")
STUB_SERVER = os.path.join(REPO, "tests", "kaggle_stub.py")
USER, KEY = "mh-test-user-q7", "f00dfacecafe0123456789abcdef4242"


class Stub:
    """The test's handle on the fake Kaggle (tests/kaggle_stub.py, its own process):
    reset() starts it afresh; setting api_status, api_body or mode changes just that;
    posts and ranges are the requests it has seen since the reset; release.set() ends
    a stalled transfer."""

    SETTINGS = ("api_status", "api_body", "mode")

    def reset(self):
        object.__setattr__(self, "_settings", {"api_status": 302, "api_body": None,
                                               "mode": "ok"})
        self._call("POST", "config", self._settings)
        object.__setattr__(self, "release", _Release(self))

    def __getattr__(self, name):
        if name in self.SETTINGS:
            return self._settings[name]
        if name == "posts":
            return [(p, a, base64.b64decode(b)) for p, a, b in self._call("GET", "state")["posts"]]
        if name == "ranges":
            return self._call("GET", "state")["ranges"]
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name not in self.SETTINGS:
            raise AttributeError("the stub has no setting %r" % name)
        self._settings[name] = value
        self._call("POST", "set", {name: value})

    @staticmethod
    def _call(method, what, obj=None):
        conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=30)
        try:
            body = None if obj is None else json.dumps(obj)
            conn.request(method, kaggle_stub.CONTROL + what, body=body)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, (resp.status, data)
            return json.loads(data)
        finally:
            conn.close()


class _Release:
    def __init__(self, stub):
        self._stub = stub

    def set(self):
        self._stub._call("POST", "release")


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen([sys.executable, STUB_SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        proc.wait()
        pytest.skip("the kaggle client's local endpoint is http://localhost:80 and binding "
                    "127.0.0.1:80 failed here (%s); run as root or in a container" % line)
    yield proc
    proc.stdin.close()   # the stub shuts down when its stdin closes
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def stub(server):
    handle = Stub()
    handle.reset()
    yield handle
    handle.release.set()


def make_env(tmp_path, creds=True):
    """A clean environment: no real KAGGLE_* variables, a private HOME and config dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    home = tmp_path / "home"
    conf = tmp_path / "kaggle-conf"
    home.mkdir(exist_ok=True)
    conf.mkdir(exist_ok=True)
    if creds:
        path = conf / "kaggle.json"
        path.write_text(json.dumps({"username": USER, "key": KEY}))
        path.chmod(0o600)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), KAGGLE_CONFIG_DIR=str(conf),
               METALHEAD_KAGGLE_LOCALHOST="1", NO_PROXY="*", no_proxy="*")
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "VERBOSE", "VERBOSE_OUTPUT"):
        env.pop(k, None)
    return env


def run(args, env, **kw):
    return subprocess.run([sys.executable, MODULE] + args, env=env, capture_output=True,
                          text=True, timeout=120, **kw)


def assert_no_secrets(*texts):
    for text in texts:
        assert KEY not in text
        assert USER not in text


def test_full_download(stub, tmp_path):
    out = tmp_path / "dl"
    r = run([str(out)], make_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (out / ZIP_NAME).read_bytes() == PAYLOAD
    assert not (out / (ZIP_NAME + ".kaggle-partial")).exists()
    path, auth, body = stub.posts[0]
    assert json.loads(body) == {"competitionName": "imagenet-object-localization-challenge"}
    assert auth == "Basic " + base64.b64encode(("%s:%s" % (USER, KEY)).encode()).decode()
    assert "Traceback" not in r.stderr + r.stdout
    assert_no_secrets(r.stdout, r.stderr)
    # A second run finds the finished file (dated like the server's copy) and keeps it.
    before = (out / ZIP_NAME).stat().st_mtime
    r2 = run([str(out)], make_env(tmp_path))
    assert r2.returncode == 0, r2.stderr
    assert "Skipping" in r2.stdout
    assert (out / ZIP_NAME).stat().st_mtime == before
    assert (out / ZIP_NAME).read_bytes() == PAYLOAD


def test_dropped_connection_is_retried_in_process(stub, tmp_path):
    stub.mode = "drop"
    out = tmp_path / "dl"
    r = run([str(out)], make_env(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / ZIP_NAME).read_bytes() == PAYLOAD
    assert stub.ranges[0] is None and stub.ranges[1].startswith("bytes=")
    assert int(stub.ranges[1].split("=")[1].rstrip("-")) > 0


def test_killed_download_resumes_on_rerun(stub, tmp_path):
    stub.mode = "stall"
    out = tmp_path / "dl"
    env = make_env(tmp_path)
    proc = subprocess.Popen([sys.executable, MODULE, str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = out / ZIP_NAME
    marker = out / (ZIP_NAME + ".kaggle-partial")
    deadline = time.time() + 60
    while time.time() < deadline and not (part.exists() and part.stat().st_size > 0 and marker.exists()):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "rerun" in stderr and "Traceback" not in stderr
    have = part.stat().st_size
    assert 0 < have < len(PAYLOAD) and marker.exists()
    stub.release.set()
    r = run([str(out)], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert stub.ranges[-1] == "bytes=%d-" % have
    assert part.read_bytes() == PAYLOAD
    assert not marker.exists()


def test_403_names_the_rules_page(stub, tmp_path):
    stub.api_status = 403
    stub.api_body = {"code": 403, "message": "You must accept this competition's rules before "
                                             "you'll be able to download files."}
    r = run([str(tmp_path / "dl")], make_env(tmp_path))
    assert r.returncode != 0
    assert "https://www.kaggle.com/c/imagenet-object-localization-challenge/rules" in r.stderr
    assert "accept the competition rules" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stderr.strip().count("\n") <= 1  # credentials line + one error line
    assert_no_secrets(r.stdout, r.stderr)


def test_401_says_credentials_rejected(stub, tmp_path):
    stub.api_status = 401
    stub.api_body = {"code": 401, "message": "Unauthenticated"}
    r = run([str(tmp_path / "dl")], make_env(tmp_path))
    assert r.returncode != 0
    assert "rejected the API credentials" in r.stderr and "Traceback" not in r.stderr
    assert_no_secrets(r.stdout, r.stderr)


def test_missing_credentials(stub, tmp_path):
    env = make_env(tmp_path, creds=False)
    r = run([str(tmp_path / "dl")], env)
    assert r.returncode != 0
    msg = r.stderr
    assert "kaggle.json" in msg and env["KAGGLE_CONFIG_DIR"] in msg
    assert "KAGGLE_USERNAME" in msg and "KAGGLE_KEY" in msg
    assert "Traceback" not in msg and len(msg.strip().splitlines()) == 1
    assert stub.posts == []  # nothing was sent


def test_half_configured_credentials_are_reported_without_values(stub, tmp_path):
    env = make_env(tmp_path, creds=False)
    env["KAGGLE_USERNAME"] = USER  # key missing
    r = run([str(tmp_path / "dl")], env)
    assert r.returncode != 0 and "KAGGLE_KEY" in r.stderr
    assert_no_secrets(r.stdout, r.stderr)


def test_env_credentials_work_and_stay_secret(stub, tmp_path):
    env = make_env(tmp_path, creds=False)
    env.update(KAGGLE_USERNAME=USER, KAGGLE_KEY=KEY)
    r = run([str(tmp_path / "dl")], env)
    assert r.returncode == 0, r.stderr
    assert "KAGGLE_USERNAME" in r.stderr
    assert_no_secrets(r.stdout, r.stderr)


def test_no_password_options(tmp_path):
    r = run(["-u", USER, "-p", KEY, str(tmp_path)], make_env(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_download_sh_uses_repo_venv(stub, tmp_path):
    if sys.prefix == sys.base_prefix:
        pytest.skip("download.sh needs <repo>/.venv; this interpreter is not a virtualenv")
    repo = tmp_path / "repo"
    shutil.copytree(os.path.join(REPO, "metalhead"), repo / "metalhead")
    shutil.copytree(os.path.join(REPO, "ilsvrc"), repo / "ilsvrc")   # shared error helpers
    os.symlink(sys.prefix, repo / ".venv")
    out = tmp_path / "dl"
    r = subprocess.run(["bash", str(repo / "metalhead" / "download.sh"), str(out)],
                       env=make_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / ZIP_NAME).read_bytes() == PAYLOAD
    assert "installing" not in r.stderr  # pinned versions already present
    assert_no_secrets(r.stdout, r.stderr)


def test_download_sh_without_venv(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(os.path.join(REPO, "metalhead"), repo / "metalhead")
    r = subprocess.run(["bash", str(repo / "metalhead" / "download.sh"), str(tmp_path / "dl")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "setup.sh" in r.stderr
