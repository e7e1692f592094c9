"""The store interface over Cloud Storage, through the official google-cloud-storage
client (imported only when a gs:// path is used): Application Default Credentials,
exact ranged reads, retries with backoff on 429, 5xx and dropped connections, and the
classification of every other failure into one UserError line naming the bucket and
the fix (credentials are never printed)."""

import os
import threading

from ilsvrc import crc32c
from ilsvrc.errors import UserError
from ilsvrc.storage.base import (GS, RETRIES, Exists, Info, Transient, short_read,
                                 split_path, with_retries)

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


def classify(err, path, doing):
    """The exception to raise for `err` (a client, auth or network error) met while
    `doing` on `path`: Transient, Exists, or a one-line UserError.  Never includes
    a credential; messages from the service are cut to their first line."""
    _, exc, auth_exc = _gcs_modules()
    bucket = "gs://" + split_path(path)[0]
    code = getattr(err, "code", None)
    first = (str(getattr(err, "message", "") or err).strip().splitlines() or [""])[0]
    if isinstance(err, auth_exc.DefaultCredentialsError):
        return UserError("no Google Cloud credentials for %s: %s, then rerun."
                         % (bucket, ADC_FIX))
    if isinstance(err, auth_exc.RefreshError):
        return UserError("the Google Cloud credentials were refused while %s %s "
                         "(expired or revoked): %s, then rerun." % (doing, bucket, ADC_FIX))
    if isinstance(err, exc.PreconditionFailed):
        return Exists(path)
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

    def _client(self, path=GS + "?"):
        key = (os.getpid(), self.project)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                storage, _, _ = _gcs_modules()
                try:
                    client = storage.Client(project=self.project)
                except Exception as err:
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
                return fn()
            except (UserError, Exists, Transient):
                raise
            except Exception as err:
                raise self._translate(err, path, doing)
        try:
            return with_retries(once)
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
        found = self._call(path, doing, lambda: self._client(path).lookup_bucket(
            name, retry=None))
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
