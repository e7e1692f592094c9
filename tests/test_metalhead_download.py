"""metalhead/download.sh + kaggle_download.py against a stub Kaggle server (no network).

The official client only talks to https://api.kaggle.com, or to http://localhost (port
80) when its "--local" switch is on; our module turns that on when
METALHEAD_KAGGLE_LOCALHOST=1. So these tests bind 127.0.0.1:80 and skip when they can't.
"""
import base64
import http.server
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

# Only look for the client here: importing it has side effects (config folder, auth help).
if importlib.util.find_spec("kaggle") is None:
    pytest.skip("the kaggle client (requirements-test.txt) is not installed", allow_module_level=True)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(REPO, "metalhead", "kaggle_download.py")
ZIP_NAME = "imagenet-object-localization-challenge.zip"
API_PATH = "/api/v1/competitions.CompetitionApiService/DownloadDataFiles"
FILE_PATH = "/storage/comp-data/" + ZIP_NAME
USER, KEY = "mh-test-user-q7", "f00dfacecafe0123456789abcdef4242"
PAYLOAD = bytes(range(256)) * 4096 * 4 + b"tail"  # 4 MiB + 4: the client reads 1 MiB chunks


class Stub:
    """What the fake Kaggle does next; tests change these fields."""

    def reset(self):
        self.api_status = 302
        self.api_body = None
        self.mode = "ok"  # "ok", "drop" (cut first transfer), "stall" (hang mid-file)
        self.posts = []
        self.ranges = []
        self.release = threading.Event()


STUB = Stub()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        STUB.posts.append((self.path, self.headers.get("Authorization"), body))
        if self.path != API_PATH:
            return self._json(404, {"code": 404, "message": "no such method"})
        if STUB.api_status != 302:
            return self._json(STUB.api_status, STUB.api_body)
        self.send_response(302)
        self.send_header("Location", "http://localhost%s?X-Goog-Signature=abc" % FILE_PATH)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if not self.path.startswith(FILE_PATH):
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        STUB.ranges.append(rng)
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"stub-v1"')
        self.send_header("Last-Modified", "Mon, 15 Jul 2019 10:00:00 GMT")
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        if rng:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(PAYLOAD) - 1, len(PAYLOAD)))
        self.end_headers()
        body = PAYLOAD[start:]
        first = len(STUB.ranges) == 1
        if first and STUB.mode in ("drop", "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if STUB.mode == "stall":
                STUB.release.wait(60)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    try:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 80), Handler)
    except OSError as e:
        pytest.skip("the kaggle client's local endpoint is http://localhost:80 and binding "
                    "127.0.0.1:80 failed here (%s); run as root or in a container" % e)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    STUB.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def stub(server):
    STUB.reset()
    yield STUB
    STUB.release.set()


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
