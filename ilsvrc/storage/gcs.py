"""The store interface over Cloud Storage, through the official google-cloud-storage
client (imported only when a gs:// path is used): Application Default Credentials,
exact ranged reads, retries with backoff on 429, 5xx and dropped connections, and the
classification of every other failure into one UserError line naming the bucket and
the fix (credentials are never printed)."""

import json
import os
import socket
import threading

from ilsvrc import crc32c
from ilsvrc.errors import UserError
from ilsvrc.storage.base import (GS, RETRIES, UNREACHABLE_RETRIES, Exists, Info,
                                 Transient, Unreachable, short_read, split_path,
                                 with_retries)

READS_IN_FLIGHT = 8           # ranged reads each worker keeps going


ADC_FIX = ("run 'gcloud auth application-default login', or set "
           "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file")


def _gcs_modules():
    try:
        from google.cloud import storage
        from google.api_core import exceptions
        import google.auth.exceptions as auth_exceptions
    except ImportError:
        raise UserError("gs:// paths need the google-cloud-storage package: run "
                        "'./setup.sh --gcs' (or '.venv/bin/pip install -r "
                        "requirements-gcs.txt'), or keep the shards local "
                        "(imagenet_to_gcs.py --nogcs_upload).")
    return storage, exceptions, auth_exceptions


CREDENTIALS_VAR = "GOOGLE_APPLICATION_CREDENTIALS"
EMULATOR_VAR = "STORAGE_EMULATOR_HOST"


def credentials_file_problem():
    """(path, what is wrong) when $GOOGLE_APPLICATION_CREDENTIALS names a file that
    is no credentials file (missing, unreadable, not a JSON object with a "type");
    None when it is unset or looks like one.  Never shows the file's content."""
    path = os.environ.get(CREDENTIALS_VAR)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except FileNotFoundError:
        return path, "which does not exist"
    except OSError as err:
        return path, "which cannot be read (%s)" % (err.strerror or err)
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return path, "which is not a JSON key file"
    if type(info) is not dict or not isinstance(info.get("type"), str):
        return path, "which is not a credentials file (a JSON object with a \"type\")"
    return None


def _no_credentials(bucket, refused=False):
    """The one line for credentials that cannot be loaded (`refused`: the library
    refused a file that looks like one)."""
    problem = credentials_file_problem()
    if problem is None and refused and os.environ.get(CREDENTIALS_VAR):
        problem = (os.environ[CREDENTIALS_VAR],
                   "which Google's auth library cannot load as credentials")
    if problem is None:
        return UserError("no Google Cloud credentials for %s: %s, then rerun."
                         % (bucket, ADC_FIX))
    return UserError("no Google Cloud credentials for %s: run 'gcloud auth "
                     "application-default login' and unset %s, or point it at a "
                     "service-account key file: it names %s, %s. Then rerun."
                     % (bucket, CREDENTIALS_VAR, problem[0], problem[1]))


_CONNECT_FAILURES = ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError",
                     "ConnectTimeout")


def _unreachable(err):
    """(host:port or None, why) when `err` says no connection could be made
    (refused, unknown host, connect timeout); None for any other error."""
    seen, stack, why, where = set(), [err], None, None
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(x, socket.gaierror):
            why = "the host name does not resolve"
        elif type(x).__name__ in _CONNECT_FAILURES:
            why = why or "no connection could be made"
            conn = x.__dict__.get("conn")
            if getattr(conn, "host", None):
                where = "%s:%s" % (conn.host, conn.port)
        stack.extend([x.__cause__, x.__context__, getattr(x, "reason", None)]
                     + [a for a in getattr(x, "args", ()) if isinstance(a, BaseException)])
    return None if why is None else (where, why)


def _unreachable_line(found, path, doing):
    where, why = found
    emulator = os.environ.get(EMULATOR_VAR)
    if emulator:
        fix = ("%s=%s sends every request there: start the emulator, or fix or unset "
               "the variable" % (EMULATOR_VAR, emulator))
    else:
        fix = ("check this machine's network, DNS, proxy and firewall (Cloud Storage "
               "is storage.googleapis.com:443)")
    return Unreachable("cannot reach %s (%s) while %s %s: %s, then rerun."
                       % (where or emulator or "Cloud Storage", why, doing, path, fix))


def classify(err, path, doing):
    """The exception to raise for `err` (a client, auth or network error) met while
    `doing` on `path`: Transient, Exists, or a one-line UserError.  Never includes
    a credential; messages from the service are cut to their first line."""
    _, exc, auth_exc = _gcs_modules()
    bucket = "gs://" + split_path(path)[0]
    code = getattr(err, "code", None)
    first = (str(getattr(err, "message", "") or err).strip().splitlines() or [""])[0]
    if isinstance(err, auth_exc.DefaultCredentialsError):
        return _no_credentials(bucket, refused=True)
    if isinstance(err, auth_exc.RefreshError):
        return UserError("the Google Cloud credentials were refused while %s %s "
                         "(expired or revoked): %s, then rerun." % (doing, bucket, ADC_FIX))
    if isinstance(err, exc.PreconditionFailed):
        return Exists(path)
    found = _unreachable(err)
    if found is not None:
        return _unreachable_line(found, path, doing)
    if isinstance(err, exc.TooManyRequests) or (isinstance(code, int) and code >= 500) \
            or isinstance(err, (exc.ServerError, exc.RetryError,
                                ConnectionError, TimeoutError, auth_exc.TransportError)):
        return Transient("%s %s: %s" % (doing, path, first or type(err).__name__))
    if type(err).__module__.startswith(("requests", "urllib3", "http.client")):
        return Transient("%s %s: %s" % (doing, path, type(err).__name__))
    if isinstance(err, exc.Unauthorized):
        return UserError("%s refused the credentials (401) while %s: %s, then rerun."
                         % (bucket, doing, ADC_FIX))
    if isinstance(err, exc.Forbidden):
        low = first.lower()
        if "ratelimit" in low.replace(" ", "") or "rate limit" in low:
            return Transient("%s %s: %s" % (doing, path, first))   # 403 rateLimitExceeded
        if "quota" in low or "billing" in low or "exceeded" in low:
            return UserError("%s: the project's quota is used up or billing is off (403) "
                             "while %s. Raise the quota or enable billing in the Cloud "
                             "console, then rerun the same command: finished shards are "
                             "kept." % (bucket, doing))
        role = "roles/storage.objectCreator" if doing.startswith("writ") else \
            "roles/storage.objectViewer"
        return UserError("%s: permission denied (403) while %s. Grant the account of "
                         "your credentials %s on the bucket (gcloud storage buckets "
                         "add-iam-policy-binding %s ...), then rerun."
                         % (bucket, doing, role, bucket))
    if isinstance(err, exc.NotFound):
        return UserError("%s: not found (404) while %s %s. Check the bucket and path "
                         "(gcloud storage ls %s)." % (bucket, doing, path, bucket))
    if isinstance(err, exc.RequestRangeNotSatisfiable):
        return None  # a read past the end: the caller reports the short read
    if isinstance(err, exc.GoogleAPICallError):
        return UserError("%s: %s failed (%s %s)." % (bucket, doing, code, first))
    return None


class GcsStore:
    """The interface over Cloud Storage.  One client per process (workers make their
    own); library retries are off so that every call is retried the same way here."""

    _lock = threading.Lock()
    _clients = {}

    def __init__(self, project=None):
        self.project = project
        self.reached = False    # the endpoint has answered this process

    def _client(self, path=GS + "?"):
        key = (os.getpid(), self.project)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                storage, _, _ = _gcs_modules()
                try:
                    client = storage.Client(project=self.project)
                except Exception as err:
                    if credentials_file_problem() is not None:
                        raise _no_credentials(GS + split_path(path)[0])
                    raise self._translate(err, path, "opening")
                try:  # room for the reads each worker keeps in flight
                    import requests.adapters
                    adapter = requests.adapters.HTTPAdapter(
                        pool_connections=4, pool_maxsize=4 * READS_IN_FLIGHT)
                    client._http.mount("https://", adapter)
                    client._http.mount("http://", adapter)
                except Exception:
                    pass
                self._clients[key] = client
        return client

    def _translate(self, err, path, doing):
        out = classify(err, path, doing)
        return out if out is not None else UserError(
            "gs://%s: %s %s failed: %s" % (split_path(path)[0], doing, path,
                                           type(err).__name__))

    def _call(self, path, doing, fn):
        def once():
            try:
                got = fn()
            except (UserError, Exists, Transient):
                raise
            except Exception as err:
                raise self._translate(err, path, doing)
            self.reached = True
            return got
        try:   # once the endpoint has answered, a lost connection is a blip
            return with_retries(once, unreachable=RETRIES if self.reached else
                                UNREACHABLE_RETRIES)
        except Unreachable as err:
            raise UserError(str(err))
        except Transient as err:
            raise UserError("gs://%s: still failing after %d retries (%s). If it is 429 "
                            "(rate limit), rerun with fewer workers; finished shards are "
                            "kept." % (split_path(path)[0], RETRIES, err))

    def _blob(self, path):
        bucket, key = split_path(path)
        return self._client(path).bucket(bucket).blob(key)

    @staticmethod
    def _info(blob):
        return Info(GS + blob.bucket.name + "/" + blob.name, blob.size,
                    crc32c.from_b64(blob.crc32c), blob.generation, dict(blob.metadata or {}))

    def stat(self, path, want_crc=False):
        bucket, key = split_path(path)

        def get():
            blob = self._client(path).bucket(bucket).get_blob(key, retry=None)
            return None if blob is None else self._info(blob)
        return self._call(path, "reading", get)

    def check_bucket(self, path, doing):
        """UserError when the bucket of `path` does not exist."""
        name = split_path(path)[0]
        if not name:
            raise UserError("%s names no bucket: use gs://BUCKET/PREFIX" % path)
        forbidden = _gcs_modules()[1].Forbidden

        def lookup():
            try:
                return self._client(path).lookup_bucket(name, retry=None)
            except forbidden:
                # No storage.buckets.get (objectViewer and objectCreator do not grant
                # it): the bucket cannot be looked up, and the object calls that
                # follow say what is missing.
                return True
        found = self._call(path, doing, lookup)
        if found is None:
            raise UserError("bucket gs://%s does not exist (or these credentials cannot "
                            "see it): create it (gcloud storage buckets create gs://%s) "
                            "or fix the path." % (name, name))

    def list(self, prefix):
        bucket, key = split_path(prefix)

        def ls():
            return [self._info(b) for b in
                    self._client(prefix).list_blobs(bucket, prefix=key, retry=None)]
        return self._call(prefix, "listing", ls)

    def read(self, path, offset, size):
        blob = self._blob(path)
        if size == 0:
            return b""

        def get():
            try:
                return blob.download_as_bytes(start=offset, end=offset + size - 1,
                                              checksum=None, raw_download=True, retry=None)
            except Exception as err:
                if classify(err, path, "reading") is None and \
                        type(err).__name__ == "RequestRangeNotSatisfiable":
                    return b""
                raise
        data = self._call(path, "reading", get)
        if len(data) != size:
            raise short_read(path, offset, len(data), size)
        return data

    def create(self, path, fileobj, size, crc, metadata=None):
        blob = self._blob(path)

        def put():
            blob.metadata = dict(metadata or {})
            blob.crc32c = crc32c.b64(crc)   # the service refuses the object if it differs
            fileobj.seek(0)
            blob.upload_from_file(fileobj, size=size, rewind=False,
                                  if_generation_match=0, checksum=None, retry=None)
            return self._info(blob)
        info = self._call(path, "writing", put)
        if info.size != size or info.crc32c != crc:
            raise UserError("%s: Cloud Storage reports %s bytes with CRC32C %s, this run "
                            "wrote %d bytes with %s. Delete the object and rerun."
                            % (path, info.size, crc32c.b64(info.crc32c or 0), size,
                               crc32c.b64(crc)))
        return info
