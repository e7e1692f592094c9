"""Source-side reads of objects in a bucket: a release tar as a container of exact
ranged reads, a seekable file over an object (tarfile walks it), a buffered stream
(a .tar.gz read front to back), reads kept in flight per worker, and finding the
release tars under a gs:// directory."""

import collections
import io
from concurrent.futures import ThreadPoolExecutor

from ilsvrc.errors import UserError
from ilsvrc.fsutil import Positioned
from ilsvrc.sources import containers
from ilsvrc.storage import check_bucket, is_remote, join, read, store_for
from ilsvrc.storage.gcs import READS_IN_FLIGHT


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

    def state(self):
        """Size, generation and the CRC32C the bucket reports: what a re-upload
        cannot keep the same."""
        info = store_for(self.path).stat(self.path)
        return [] if info is None else [info.size, info.generation, info.crc32c]


class RemoteFile(Positioned):
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
        self.closed = False   # what io-style readers (pyarrow) ask of a file

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

    @property
    def _extent(self):
        return self.size

    def close(self):
        self._cache, self.closed = b"", True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()



def open_stream(path, block=8 << 20, size=None, buffer_size=1 << 20):
    """The object `path` as a buffered binary stream read front to back, `block`
    bytes a request (bbox streams its .tar.gz this way; verify reads shards)."""
    return io.BufferedReader(_Raw(RemoteFile(path, size, block)),
                             buffer_size=buffer_size)


class _Raw(io.RawIOBase):
    def __init__(self, rf):
        self._rf = rf

    def readable(self):
        return True

    def readinto(self, b):
        data = self._rf.read(len(b))
        b[:len(data)] = data
        return len(data)



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



def object_stats(keys):
    """{gs:// path: [size, generation, CRC32C] or None when gone}: what an index
    records of a bucket source (the callable form of indexfile's expected stats)."""
    out = {}
    for p in keys:
        info = store_for(p).stat(p)
        out[p] = None if info is None else [info.size, info.generation, info.crc32c]
    return out
