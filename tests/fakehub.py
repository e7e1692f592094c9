"""A fake Hugging Face Hub on 127.0.0.1 for tests/test_download_hf.py.

It serves exactly what huggingface_hub 2.4.0 asks for when `./download.sh hf` runs:

* GET  /api/datasets/{repo}/revision/{rev}?blobs=true  (HfApi.dataset_info with
  files_metadata=True): the commit sha and every file with its size, git blob id and,
  for LFS files, the LFS sha256;
* HEAD /datasets/{repo}/resolve/{rev}/{path}  (hf_hub_download's metadata call):
  X-Repo-Commit and ETag; LFS files answer 302 to a second server (the "CDN", another
  port, so the client drops the Authorization header as it does for the real CDN) with
  X-Linked-Etag (the sha256) and X-Linked-Size; small git files answer 200 with their
  git blob id as ETag;
* GET on the same resolve URL for small files, and GET /blobs/{sha256} on the CDN, with
  Range requests (206 + Content-Range);
* errors as the Hub spells them: the status and an X-Error-Code header (GatedRepo,
  RevisionNotFound, RepoNotFound, EntryNotFound) that the client maps to its
  exceptions, and 401 "Invalid credentials in Authorization header" for a bad token.

Switches a test can turn on: gated, repo_missing, wrong_sha256 (paths whose reported
sha256 is not their content's), drop_once (paths whose first CDN transfer stops after
`drop_after` bytes), stall (paths whose CDN transfer stops half-way and waits for
`release`).  `log` holds (server, method, path, headers with lower-case names) of every
request.
"""

import hashlib
import http.server
import json
import threading
import urllib.parse

REPO = "ILSVRC/imagenet-1k"


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data):
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n"
            % (hashlib.sha256(data).hexdigest(), len(data))).encode()


def is_lfs(path):
    return path.startswith("data/")


class FakeHub:
    def __init__(self, commits, refs, token):
        self.commits = commits            # {commit sha: {path: bytes}}
        self.refs = refs                  # {branch or tag: commit sha}
        self.token = token
        self.gated = False
        self.repo_missing = False
        self.wrong_sha256 = set()
        self.drop_once = set()
        self.drop_after = None            # bytes sent before a drop (default: half)
        self.stall = set()
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.log = []
        self._dropped = set()
        self._lock = threading.Lock()
        self._servers = []

    # --- what tests use -------------------------------------------------------------
    def start(self):
        for role in ("hub", "cdn"):
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.hub, server.role = self, role
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self):
        self.release.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._servers[0].server_address[1]

    @property
    def cdn_url(self):
        return "http://127.0.0.1:%d" % self._servers[1].server_address[1]

    def requests(self, server=None, method=None, path=None):
        with self._lock:
            return [r for r in self.log if (server is None or r[0] == server)
                    and (method is None or r[1] == method)
                    and (path is None or path in r[2])]

    def file_requests(self):
        """Every request that fetches or looks up a file (all but the repo info)."""
        return [r for r in self.requests() if not r[2].startswith("/api/")]

    def reported_sha256(self, path, data):
        if path in self.wrong_sha256:
            return hashlib.sha256(b"not the bytes served" + data).hexdigest()
        return hashlib.sha256(data).hexdigest()

    # --- lookups ----------------------------------------------------------------------
    def commit_of(self, rev):
        if rev in self.commits:
            return rev
        return self.refs.get(rev)

    def blob(self, sha):
        for files in self.commits.values():
            for path, data in files.items():
                if hashlib.sha256(data).hexdigest() == sha:
                    return path, data
        return None, None

    def info(self, commit):
        siblings = []
        for path, data in sorted(self.commits[commit].items()):
            if is_lfs(path):
                pointer = lfs_pointer(data)
                siblings.append({"rfilename": path, "size": len(data),
                                 "blobId": git_blob_id(pointer),
                                 "lfs": {"size": len(data),
                                         "sha256": self.reported_sha256(path, data),
                                         "pointerSize": len(pointer)}})
            else:
                siblings.append({"rfilename": path, "size": len(data),
                                 "blobId": git_blob_id(data)})
        return {"_id": "fake", "id": REPO, "author": "ILSVRC", "sha": commit,
                "private": False, "gated": "manual", "disabled": False,
                "siblings": siblings}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def _dispatch(self, head):
        hub = self.server.hub
        path = urllib.parse.urlsplit(self.path).path
        with hub._lock:
            hub.log.append((self.server.role, self.command, path,
                            {k.lower(): v for k, v in self.headers.items()}))
        if self.server.role == "cdn":
            return self._cdn(hub, path, head)
        if path.startswith("/api/datasets/"):
            return self._api(hub, path[len("/api/datasets/"):])
        if path.startswith("/datasets/"):
            return self._resolve(hub, path[len("/datasets/"):], head)
        self._error(404, None, "Not Found")

    # --- responses ---------------------------------------------------------------------
    def _send(self, status, headers, body=b"", head=False):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status, code, message, extra=None):
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        headers.update(extra or {})
        self._send(status, headers, json.dumps({"error": message}).encode(),
                   head=self.command == "HEAD")

    def _auth(self, hub):
        """None when the Authorization header is absent, True when it holds the token;
        a wrong token is answered with 401 here (False)."""
        got = self.headers.get("Authorization")
        if got is None:
            return None
        if got != "Bearer " + hub.token:
            self._error(401, None, "Invalid credentials in Authorization header")
            return False
        return True

    def _repo_rest(self, hub, rest, sep):
        """`rest` after `{repo}/{sep}/`, or None after answering RepoNotFound."""
        prefix = REPO + "/" + sep + "/"
        if hub.repo_missing or not rest.startswith(prefix):
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        return rest[len(prefix):]

    def _api(self, hub, rest):
        if self._auth(hub) is False:
            return
        rev = self._repo_rest(hub, rest, "revision")
        if rev is None:
            return
        commit = hub.commit_of(urllib.parse.unquote(rev))
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
        body = json.dumps(hub.info(commit)).encode()
        self._send(200, {"Content-Type": "application/json"}, body)

    def _resolve(self, hub, rest, head):
        auth = self._auth(hub)
        if auth is False:
            return
        rest = self._repo_rest(hub, rest, "resolve")
        if rest is None:
            return
        rev, _, name = rest.partition("/")
        commit = hub.commit_of(urllib.parse.unquote(rev))
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
        if hub.gated:
            return self._error(401 if auth is None else 403, "GatedRepo",
                               "Access to dataset %s is restricted and you are not in "
                               "the authorized list." % REPO)
        name = urllib.parse.unquote(name)
        data = hub.commits[commit].get(name)
        if data is None:
            return self._error(404, "EntryNotFound", "Entry not found",
                               {"X-Repo-Commit": commit})
        if is_lfs(name):
            sha = hub.reported_sha256(name, data)
            real = hashlib.sha256(data).hexdigest()
            return self._send(302, {
                "Location": "%s/blobs/%s" % (hub.cdn_url, real),
                "X-Repo-Commit": commit, "ETag": '"%s"' % git_blob_id(lfs_pointer(data)),
                "X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": len(data)}, head=head)
        self._ranged(data, {"X-Repo-Commit": commit, "ETag": '"%s"' % git_blob_id(data)},
                     head)

    def _ranged(self, data, headers, head, cut=None):
        """200 or 206 for a Range request; `cut` sends only that many body bytes."""
        start = 0
        want = self.headers.get("Range")
        if want and want.startswith("bytes=") and want.endswith("-"):
            start = int(want[len("bytes="):-1])
        body = data[start:]
        headers = dict(headers, **{"Content-Length": len(body), "Accept-Ranges": "bytes"})
        if start:
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        self.send_response(206 if start else 200)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()
        if head:
            return
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True

    def _cdn(self, hub, path, head):
        if not path.startswith("/blobs/"):
            return self._error(404, None, "Not Found")
        name, data = hub.blob(path[len("/blobs/"):])
        if data is None:
            return self._error(404, None, "Not Found")
        headers = {"ETag": '"s3-%s"' % hashlib.md5(data).hexdigest()}
        cut = None
        with hub._lock:
            if not head and name in hub.drop_once and name not in hub._dropped:
                hub._dropped.add(name)
                cut = hub.drop_after or len(data) // 2
            stall = not head and name in hub.stall
        if stall:
            cut = len(data) // 2
        self._ranged(data, headers, head, cut)
        if stall:
            hub.stalled.set()
            hub.release.wait(60)
