"""A stand-in for Kaggle's API and its signed-URL file server, for
tests/test_metalhead_download.py.

It runs as its own process (`python tests/kaggle_stub.py`), not as a thread of the
pytest process: a thread there shares that process's interpreter (its GIL, its
threads and whatever state earlier tests left in it), so how fast it answers depends
on what ran before.  The stall case additionally parks a handler thread for up to a
minute.  As a child process it answers the same way in a module run, a full run and
an xdist worker.

It listens on 127.0.0.1:80 (the client's "--local" endpoint is http://localhost),
prints "ready" on stdout once it listens, or "cannot-bind: REASON" and exits 3.
Besides the two Kaggle paths it answers, for the test, under /_stub/:
  POST /_stub/config   JSON {api_status, api_body, mode}: start afresh (forget the
                       requests seen so far, new release event) with these settings
  POST /_stub/set      JSON with some of those settings: change just them
  GET  /_stub/state    JSON {posts: [[path, authorization, body base64]], ranges: [...]}
  POST /_stub/release  let a stalled transfer end
"""

import base64
import http.server
import json
import sys
import threading

ZIP_NAME = "imagenet-object-localization-challenge.zip"
API_PATH = "/api/v1/competitions.CompetitionApiService/DownloadDataFiles"
FILE_PATH = "/storage/comp-data/" + ZIP_NAME
PAYLOAD = bytes(range(256)) * 4096 * 4 + b"tail"  # 4 MiB + 4: the client reads 1 MiB chunks
CONTROL = "/_stub/"


class Stub:
    """What the fake Kaggle does next (set through /_stub/config)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.configure({})

    def configure(self, settings):
        """Start afresh with `settings` (the defaults for those not given)."""
        with self.lock:
            self.api_status, self.api_body = 302, None
            self.mode = "ok"  # "ok", "drop" (cut first transfer), "stall" (hang mid-file)
            self.posts = []
            self.ranges = []
            old = getattr(self, "release", None)
            self.release = threading.Event()
        self.update(settings)
        if old is not None:
            old.set()  # a transfer still stalled from before ends now

    def update(self, settings):
        """Change only the settings given; keep what was seen so far."""
        with self.lock:
            for key in ("api_status", "api_body", "mode"):
                if key in settings:
                    setattr(self, key, settings[key])


STUB = Stub()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith(CONTROL):
            return self._control_post(body)
        with STUB.lock:
            STUB.posts.append((self.path, self.headers.get("Authorization"), body))
            status, api_body = STUB.api_status, STUB.api_body
        if self.path != API_PATH:
            return self._json(404, {"code": 404, "message": "no such method"})
        if status != 302:
            return self._json(status, api_body)
        self.send_response(302)
        self.send_header("Location", "http://localhost%s?X-Goog-Signature=abc" % FILE_PATH)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _control_post(self, body):
        if self.path == CONTROL + "config":
            STUB.configure(json.loads(body or b"{}"))
        elif self.path == CONTROL + "set":
            STUB.update(json.loads(body or b"{}"))
        elif self.path == CONTROL + "release":
            STUB.release.set()
        else:
            return self._json(404, {"message": "no such control"})
        return self._json(200, {})

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == CONTROL + "state":
            with STUB.lock:
                state = {"posts": [[p, a, base64.b64encode(b).decode()]
                                   for p, a, b in STUB.posts],
                         "ranges": list(STUB.ranges)}
            return self._json(200, state)
        if not self.path.startswith(FILE_PATH):
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        with STUB.lock:
            STUB.ranges.append(rng)
            first = len(STUB.ranges) == 1
            mode, release = STUB.mode, STUB.release
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"stub-v1"')
        self.send_header("Last-Modified", "Mon, 15 Jul 2019 10:00:00 GMT")
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        if rng:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(PAYLOAD) - 1,
                                                                 len(PAYLOAD)))
        self.end_headers()
        body = PAYLOAD[start:]
        if first and mode in ("drop", "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if mode == "stall":
                release.wait(60)
            self.close_connection = True
            return
        self.wfile.write(body)


def main():
    try:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 80), Handler)
    except OSError as e:
        print("cannot-bind: %s" % e, flush=True)
        return 3
    srv.daemon_threads = True
    print("ready", flush=True)
    # Stop when the test process goes away (it closes our stdin, or dies).
    threading.Thread(target=lambda: (sys.stdin.read(), srv.shutdown()), daemon=True).start()
    srv.serve_forever()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
