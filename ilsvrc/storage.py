"""Where bytes live: one narrow interface over local files and gs:// objects.

    store = storage.store_for(path)
    store.stat(path)                     -> Info or None
    store.list(prefix)                   -> [Info] of paths starting with prefix
    store.read(path, offset, size)       -> exactly `size` bytes (UserError if short)
    store.create(path, fileobj, size, crc32c, metadata)
                                         -> Info; creates the object only if absent,
                                            raises Exists otherwise, and checks the size
                                            and CRC32C that storage reports

`LocalStore` serves plain paths, `GcsStore` gs:// paths through the official
google-cloud-storage client (imported only when a gs:// path is used), with
Application Default Credentials, exact ranged reads, and retries with backoff on
429, 5xx and dropped connections.  Every other failure becomes one UserError line
naming the bucket and the fix; credentials are never printed.  The rest of this module
builds on that interface: the shard writer of a worker (framing records while the
object's CRC32C is computed), resume from what the bucket holds, a seekable file over
an object (tar indexing), reads kept in flight per worker, and the cached index of a
bucket source.
"""

import base64
import collections
import gzip
import hashlib
import io
import json
import os
import random
import struct
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ilsvrc import containers, tfrecord
from ilsvrc.errors import UserError

GS = "gs://"
# Shards up to this size are built in memory; larger ones (far fewer shards than the
# default layouts) spill to a temporary file that is deleted once uploaded.
SPOOL_BYTES = 512 << 20
READS_IN_FLIGHT = 8           # ranged reads each worker keeps going
RETRIES = 8                   # attempts after the first, backoff 0.5 s .. 30 s
INDEX_VERSION = "ilsvrc-gs-index-2"
index_hint = None             # front ends: a local directory for the index (scratch dir)

Info = collections.namedtuple("Info", "path size crc32c generation metadata")


def is_remote(path):
    return isinstance(path, str) and path.startswith(GS)


def split_path(path):
    """'gs://bucket/a/b' -> ('bucket', 'a/b')."""
    bucket, _, key = path[len(GS):].partition("/")
    return bucket, key


def join(base, name):
    return base.rstrip("/") + "/" + name if is_remote(base) else os.path.join(base, name)


class Exists(Exception):
    """create(): the object is already there (nothing was written)."""


class Transient(Exception):
    """A failure worth retrying: 429, 5xx, a dropped or reset connection."""


# --------------------------------------------------------------------------- CRC32C

try:  # the C implementation that comes with google-cloud-storage
    import google_crc32c as _gcrc
    if getattr(_gcrc, "implementation", "c") != "c":
        _gcrc = None
except ImportError:
    _gcrc = None


def crc32c(data, crc=0):
    """CRC32C of data continuing from `crc`: google-crc32c's C code when installed,
    else ilsvrc.tfrecord's pure-Python reference (same values, slower)."""
    if _gcrc is not None:
        return _gcrc.extend(crc, bytes(data) if isinstance(data, memoryview) else data)
    return tfrecord.crc32c(data, crc)


def masked_crc(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def crc_b64(crc):
    """Cloud Storage's spelling of a CRC32C: base64 of the big-endian 4 bytes."""
    return base64.b64encode(struct.pack(">I", crc)).decode("ascii")


def crc_from_b64(text):
    return struct.unpack(">I", base64.b64decode(text))[0] if text else None


# --------------------------------------------------------------------------- retries

def with_retries(fn, attempts=None, sleep=time.sleep, seed=None):
    """fn() retried on Transient with exponential backoff and jitter; the last
    Transient is re-raised."""
    attempts = RETRIES if attempts is None else attempts
    rnd = random.Random(seed)
    delay = 0.5
    for attempt in range(attempts + 1):
        try:
            return fn()
        except Transient:
            if attempt == attempts:
                raise
            sleep(delay * (0.5 + rnd.random()))
            delay = min(delay * 2, 30.0)


# --------------------------------------------------------------------------- local

class LocalStore:
    """The interface over the local file system (CRC32C computed on demand)."""

    def stat(self, path, want_crc=False):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise UserError("cannot read %s: %s" % (path, err.strerror))
        crc = None
        if want_crc:
            crc = 0
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    crc = crc32c(block, crc)
        return Info(path, st.st_size, crc, st.st_mtime_ns, {})

    def list(self, prefix):
        d, start = os.path.split(prefix)
        try:
            names = sorted(os.listdir(d or "."))
        except FileNotFoundError:
            return []
        return [self.stat(os.path.join(d, n)) for n in names
                if n.startswith(start) and os.path.isfile(os.path.join(d, n))]

    def read(self, path, offset, size):
        try:
            with open(path, "rb") as f:
                data = os.pread(f.fileno(), size, offset)
        except OSError as err:
            raise UserError("cannot read %s: %s" % (path, err.strerror))
        if len(data) != size:
            raise short_read(path, offset, len(data), size)
        return data

    def create(self, path, fileobj, size, crc, metadata=None):
        d, name = os.path.split(path)
        tmp = os.path.join(d, ".%s.%d.partial" % (name, os.getpid()))
        got = 0
        try:
            with open(tmp, "wb") as out:
                fileobj.seek(0)
                for block in iter(lambda: fileobj.read(1 << 22), b""):
                    got = crc32c(block, got)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if got != crc or os.path.getsize(tmp) != size:
                raise UserError("%s: wrote %d bytes with CRC32C %08x, expected %d bytes "
                                "with %08x" % (path, os.path.getsize(tmp), got, size, crc))
            try:
                os.link(tmp, path)       # fails if the name exists: create-if-absent
            except FileExistsError:
                raise Exists(path)
        except OSError as err:
            raise UserError("cannot write %s: %s" % (path, err.strerror or err))
        finally:
            try:
                os.remove(tmp)
            except OSError:
                pass
        return Info(path, size, crc, None, dict(metadata or {}))


def short_read(path, offset, got, size):
    return UserError("%s: the object ends at byte %d, inside a member that should run to "
                     "byte %d (truncated?). Replace it with a complete copy."
                     % (path, offset + got, offset + size))


# --------------------------------------------------------------------------- gs://

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
                    crc_from_b64(blob.crc32c), blob.generation, dict(blob.metadata or {}))

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
            blob.crc32c = crc_b64(crc)   # the service refuses the object if it differs
            fileobj.seek(0)
            blob.upload_from_file(fileobj, size=size, rewind=False,
                                  if_generation_match=0, checksum=None, retry=None)
            return self._info(blob)
        info = self._call(path, "writing", put)
        if info.size != size or info.crc32c != crc:
            raise UserError("%s: Cloud Storage reports %s bytes with CRC32C %s, this run "
                            "wrote %d bytes with %s. Delete the object and rerun."
                            % (path, info.size, crc_b64(info.crc32c or 0), size,
                               crc_b64(crc)))
        return info


_LOCAL = LocalStore()
_GCS = {}
_override = None   # tests: a store that replaces GcsStore for gs:// paths


def store_for(path):
    if not is_remote(path):
        return _LOCAL
    if _override is not None:
        return _override
    pid = os.getpid()
    if pid not in _GCS:
        _GCS[pid] = GcsStore(os.environ.get("GOOGLE_CLOUD_PROJECT"))
    return _GCS[pid]


def check_bucket(path, doing):
    store = store_for(path)
    if hasattr(store, "check_bucket"):
        store.check_bucket(path, doing)


# --------------------------------------------------------------------------- writing

META_PLAN, META_SIZE, META_CRC = "ilsvrc-plan", "ilsvrc-size", "ilsvrc-crc32c"


class ShardWriter:
    """A TFRecord writer for a worker whose shard goes to an object: records are
    framed here (same bytes as TensorFlow's writer) while the object's CRC32C is
    computed, kept in memory (spilling to a temporary file past SPOOL_BYTES), and
    uploaded by close() with create-if-absent.  Nothing reaches the destination
    before the shard is complete; a kill leaves no object."""

    def __init__(self, path, plan, spool_dir=None):
        self.path, self.plan = path, plan
        self._buf = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=spool_dir)
        self.size, self.crc = 0, 0
        self.existed = False

    def buffer(self):
        """The shard's bytes so far, as a seekable file (shardcheck reads the shard
        back from it before close() uploads it); write() appends at the end wherever
        a reader left the position."""
        return self._buf

    def flush(self):
        self._buf.flush()

    def write(self, payload):
        length = struct.pack("<Q", len(payload))
        self._buf.seek(0, io.SEEK_END)
        for part in (length, struct.pack("<I", masked_crc(length)), payload,
                     struct.pack("<I", masked_crc(payload))):
            self._buf.write(part)
            self.crc = crc32c(part, self.crc)
            self.size += len(part)

    def close(self):
        """Upload; returns the object's size.  An object already there that holds
        exactly this shard (same plan, size and CRC32C: another task wrote it) is
        accepted; any other is left alone and reported."""
        meta = {META_PLAN: self.plan, META_SIZE: str(self.size),
                META_CRC: crc_b64(self.crc)}
        store = store_for(self.path)
        try:
            store.create(self.path, self._buf, self.size, self.crc, meta)
        except Exists:
            other = store.stat(self.path)
            if other is None or not finished_by(other, self.plan):
                raise not_ours(self.path)
            self.existed = True
        finally:
            self._buf.close()
        return self.size

    def abort(self):
        self._buf.close()


def finished_by(info, plan):
    """Whether object `info` is a complete shard of `plan`: written by ShardWriter
    for this plan, with the size and CRC32C it computed while writing."""
    meta = info.metadata or {}
    return (meta.get(META_PLAN) == plan and meta.get(META_SIZE) == str(info.size)
            and (info.crc32c is None or meta.get(META_CRC) == crc_b64(info.crc32c)))


def not_ours(path):
    d = path.rsplit("/", 1)[0]
    return UserError("%s already exists and is not a shard of this conversion (another "
                     "plan or another tool wrote it); objects are never overwritten. "
                     "Delete them (gcloud storage rm '%s/*') or choose another prefix."
                     % (path, d))


def remote_done(split, plan):
    """Shards of `split` already in the bucket (k's), from one listing.  Any object
    with a shard's name that is not that shard of this plan stops the run."""
    prefix = join(split.out_dir, split.prefix + "-")
    check_bucket(prefix, "writing to")
    have = {info.path: info for info in store_for(prefix).list(prefix)}
    done = set()
    for k in range(split.num_shards):
        info = have.get(split.path(k))
        if info is None:
            continue
        if not finished_by(info, plan):
            raise not_ours(info.path)
        done.add(k)
    return done


# --------------------------------------------------------------------------- reading

def read(path, offset, size):
    return store_for(path).read(path, offset, size)


def read_ahead(items, read_one, depth=READS_IN_FLIGHT):
    """Yield read_one(item) for each item (container path first) in order.  Reads of
    gs:// objects run `depth` at a time on threads; local reads run inline (os.pread
    is already fast, and threads would only add overhead)."""
    items = list(items)
    if not any(isinstance(it[0], ObjectSlices) or is_remote(it[0]) for it in items):
        for it in items:
            yield read_one(it)
        return
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="read") as ex:
        window = collections.deque()
        it = iter(items)
        for item in it:
            window.append(ex.submit(read_one, item))
            if len(window) >= depth:
                break
        try:
            while window:
                data = window.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    window.append(ex.submit(read_one, nxt))
                yield data
        finally:
            for fut in window:
                fut.cancel()


class ObjectSlices(containers.Container):
    """A release tar in a bucket, as a container: each member is one exact ranged
    read (no handle to keep; the client's connection pool is per process)."""

    shared = False

    def identity(self):
        if self._identity is None:
            info = store_for(self.path).stat(self.path)
            if info is None:
                raise UserError("%s does not exist (any more)" % self.path)
            self._identity = (self.path.rsplit("/", 1)[-1], info.size)
        return self._identity

    def read(self, handle, offset, size):
        return read(self.path, offset, size)


class RemoteFile(containers.Positioned):
    """A read-only seekable file over an object (tarfile walks it).  block=0 reads
    exactly what is asked (one ranged read per tar header); block=N reads ahead N
    bytes at a time (a streaming pass)."""

    def __init__(self, path, size=None, block=0):
        self.path, self.store = path, store_for(path)
        if size is None:
            info = self.store.stat(path)
            if info is None:
                raise UserError("%s does not exist" % path)
            size = info.size
        self.size, self.block = size, block
        self.limit = size   # read-ahead stops here (the end of an inner tar)
        self._pos, self._cache_at, self._cache = 0, 0, b""
        self.requests = 0

    def pread(self, n, offset):
        n = max(0, min(n, self.size - offset))
        if n == 0:
            return b""
        c0, c1 = self._cache_at, self._cache_at + len(self._cache)
        if c0 <= offset and offset + n <= c1:
            return self._cache[offset - c0:offset - c0 + n]
        want = max(n, min(self.block, self.limit - offset))
        want = min(want, self.size - offset)
        self.requests += 1
        data = self.store.read(self.path, offset, want)
        if self.block:
            self._cache_at, self._cache = offset, data
        return data[:n]

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.size - self._pos
        data = self.pread(n, self._pos)
        self._pos += len(data)
        return data

    @property
    def _extent(self):
        return self.size

    def close(self):
        self._cache = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_records(path, block=16 << 20):
    """Yield the payloads of the TFRecord object `path`, both CRCs checked (verify
    of gs:// shards); tfrecord.CorruptRecord on bad framing."""
    info = store_for(path).stat(path)
    if info is None:
        raise UserError("%s is missing. Rerun the conversion to write it." % path)
    f = io.BufferedReader(_Raw(RemoteFile(path, info.size, 0)), buffer_size=block)
    yield from tfrecord.read_stream(f, masked=masked_crc)


def open_stream(path, block=8 << 20):
    """The object `path` as a buffered binary stream read front to back, `block`
    bytes a request (bbox streams its .tar.gz this way)."""
    return io.BufferedReader(_Raw(RemoteFile(path, block=block)), buffer_size=1 << 20)


class _Raw(io.RawIOBase):
    def __init__(self, rf):
        self._rf = rf

    def readable(self):
        return True

    def readinto(self, b):
        data = self._rf.read(len(b))
        b[:len(data)] = data
        return len(data)


# --------------------------------------------------------------------------- sources

def find_tars(raw_dir, names):
    """The release tars under a gs:// directory: their paths, each checked to exist."""
    check_bucket(raw_dir, "reading")
    store = store_for(raw_dir)
    paths = [join(raw_dir, n) for n in names]
    missing = [p for p in paths if store.stat(p) is None]
    if missing:
        raise UserError("missing %s. Put both ILSVRC2012 tars in %s (gcloud storage cp "
                        "ILSVRC2012_img_*.tar %s/)." % (" and ".join(missing), raw_dir,
                                                       raw_dir.rstrip("/")))
    return paths


def index_dir(hint=None):
    """Where the index of a bucket source is kept: `hint` (e.g. --local_scratch_dir),
    else $ILSVRC_INDEX_DIR, else ~/.cache/ilsvrc-prep."""
    return hint or os.environ.get("ILSVRC_INDEX_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ilsvrc-prep")


def fetch_small(path, limit=16 << 20):
    """Copy a small object (a label file) into index_dir(); its local path, or None
    when there is no such object."""
    info = store_for(path).stat(path)
    if info is None:
        return None
    if info.size > limit:
        raise UserError("%s is %d bytes; a label file is far smaller. Check the path."
                        % (path, info.size))
    data = store_for(path).read(path, 0, info.size)
    d = os.path.join(index_dir(index_hint), "files-" + hashlib.sha256(
        repr((path, info.generation)).encode()).hexdigest()[:16])
    local = os.path.join(d, path.rsplit("/", 1)[-1])
    try:
        os.makedirs(d, exist_ok=True)
        with open(local + ".tmp", "wb") as f:
            f.write(data)
        os.replace(local + ".tmp", local)
    except OSError as err:
        raise UserError("cannot write %s: %s" % (local, err.strerror or err))
    return local


def object_stats(keys):
    """{gs:// path: [size, generation] or None when gone}: what an index records of
    a bucket source (the callable form of ilsvrc/index.py's expected stats)."""
    out = {}
    for p in keys:
        info = store_for(p).stat(p)
        out[p] = None if info is None else [info.size, info.generation]
    return out


def _source_key(paths):
    """Identity of the source objects: path, size and generation (a new upload of the
    same name gets a new generation, so a stale index is never used)."""
    stats = object_stats(paths)
    return [(p, stats[p][0], stats[p][1]) for p in paths]


def _index_module():
    """Task mode's index file module (ilsvrc/index.py, issue 13) when present."""
    try:
        from ilsvrc import index
    except ImportError:
        return None
    return index if hasattr(index, "save") and hasattr(index, "load") else None


def _dump_listing(listing):
    return {"split": listing.split, "names": listing.names,
            "group_names": listing.group_names, "group": list(listing.group),
            "container": list(listing.container), "offset": list(listing.offset),
            "size": list(listing.size), "containers": [c.path for c in listing.containers],
            "inner_tars": listing.inner_tars}


def _load_listing(d, listing_cls):
    from array import array
    lst = listing_cls(d["split"])
    lst.names, lst.group_names = d["names"], d["group_names"]
    lst._group_ids = {g: i for i, g in enumerate(lst.group_names)}
    lst.group, lst.container = array("I", d["group"]), array("i", d["container"])
    lst.offset, lst.size = array("Q", d["offset"]), array("q", d["size"])
    lst.containers = [ObjectSlices(p) for p in d["containers"]]
    lst.inner_tars = d["inner_tars"]
    return lst


def cached_listings(paths, build, listing_cls, cache_dir=None, log=sys.stderr):
    """(train, validation) listings of the bucket tars `paths`: from the index file
    in index_dir(cache_dir) when it matches the objects' sizes and generations, else
    build() them (reading the tars' headers from the bucket) and save the index.

    Adapter for ilsvrc/index.py (task mode): when that module is present its file
    format is used (stats: the objects' size and generation), else a gzipped JSON of
    the listing columns."""
    idx = _index_module()
    if idx is not None:
        return _task_index_listings(idx, paths, build, cache_dir, log)
    key = _source_key(paths)
    name = "index-%s.json.gz" % hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    d = index_dir(cache_dir)
    path = os.path.join(d, name)
    try:
        with gzip.open(path, "rt") as f:
            saved = json.load(f)
        if saved.get("version") == INDEX_VERSION and saved.get("key") == \
                [list(k) for k in key]:
            log.write("index of %s from %s\n" % (", ".join(paths), path))
            return tuple(_load_listing(x, listing_cls) for x in saved["listings"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    t0 = time.monotonic()
    listings = build()
    log.write("indexed %s in %.1f s (%d images); index saved to %s\n"
              % (", ".join(paths), time.monotonic() - t0, sum(map(len, listings)), path))
    try:
        os.makedirs(d, exist_ok=True)
        tmp = path + ".%d.tmp" % os.getpid()
        with gzip.open(tmp, "wt") as f:
            json.dump({"version": INDEX_VERSION, "key": [list(k) for k in key],
                       "listings": [_dump_listing(x) for x in listings]}, f)
        os.replace(tmp, path)
    except OSError as err:
        log.write("note: could not save the index to %s (%s); the next run indexes "
                  "again\n" % (path, err.strerror or err))
    return listings


def _task_index_listings(idx, paths, build, cache_dir, log):
    """cached_listings through ilsvrc/index.py's file format: stats are the objects'
    [size, generation]; a stale or damaged index is rebuilt, not trusted."""
    stats = object_stats(paths)
    meta = {"source": "gs", "objects": list(paths)}
    path = os.path.join(index_dir(cache_dir), "gs-%s.index" % hashlib.sha256(
        repr(list(paths)).encode()).hexdigest()[:16])
    if os.path.exists(path):
        try:
            listings = tuple(idx.load(path, stats, meta=meta))
            log.write("index of %s from %s\n" % (", ".join(paths), path))
            return listings
        except UserError as err:
            log.write("note: %s; indexing the bucket again\n" % err)
    t0 = time.monotonic()
    listings = tuple(build())
    log.write("indexed %s in %.1f s (%d images); index saved to %s\n"
              % (", ".join(paths), time.monotonic() - t0, sum(map(len, listings)), path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    idx.save(path, listings, stats, meta=meta)
    return listings
