"""One read interface for every place image bytes lie: a whole file, a slice of an
archive read in place (the release tars), or a member of a zip archive.

A container is a small picklable description (its kind and path) that travels with
the planned images to the workers; `Reader` opens it where the bytes are read.
Archives are opened once per process and kept open (checked against the file on
disk once per batch), so a worker opens the 155 GB Kaggle zip once, not per image.
A release tar published in parts (ilsvrc/sources/parts.py) is still one `Slices`
container named by the tar's own path: its handle reads the parts in place.
"""

import os
import resource
import struct
import zlib

from ilsvrc import contract
from ilsvrc.errors import UserError
from ilsvrc.sources import parts


def _short_read(path, offset, got, size):
    return UserError("%s: file ends at byte %d, inside a member that should run "
                     "to byte %d (truncated?). Get a complete copy of the file."
                     % (path, offset + got, offset + size))


def zip_damaged(path, what):
    """The error for a damaged Kaggle zip: what is wrong and how to get a good one."""
    return UserError("%s: %s. The download is incomplete or damaged: rerun "
                     "metalhead/download.sh to finish it." % (path, what))


class Container:
    """Where image bytes lie.  `read(handle, offset, size)` reads one image from a
    handle that `open()` returned; `identity()` names the container in a way that
    survives moving it (its base name and size)."""

    shared = True        # keep one open handle per process

    def __init__(self, path):
        self.path = path
        self._identity = None

    def __str__(self):
        return self.path

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.path)

    def __eq__(self, other):
        return type(self) is type(other) and self.path == other.path

    def __hash__(self):
        return hash((type(self).__name__, self.path))

    def __getstate__(self):
        return self.path

    def __setstate__(self, path):
        self.path, self._identity = path, None

    def identity(self):
        if self._identity is None:
            self._identity = (os.path.basename(self.path), os.path.getsize(self.path))
        return self._identity

    def state(self):
        """What the bytes read from here are now, as far as the file system can
        tell: what a same-size edit, a `touch -r` or a replaced file cannot keep the
        same (size, mtime, ctime, inode).  A change since shards were written from
        it has them checked again (write.resume)."""
        return file_state(self.path)

    def stamp(self):
        """What the file on disk is now (device, inode, size, mtime): a held handle
        is reopened when this changes."""
        st = os.stat(self.path)
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def open(self):
        return os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def close(self, handle):
        os.close(handle)


def file_state(path):
    """Container.state of one local file ([] when it is gone)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class File(Container):
    """An image that is a file of its own (an extracted tree): read whole."""

    shared = False

    def identity(self):
        return ()        # the image is named by its relpath alone

    def read(self, handle, offset, size):
        with open(self.path, "rb") as f:
            return f.read()


class Slices(Container):
    """An uncompressed archive (a release tar) whose members are read at their
    offsets.  When the tar is published in parts (`path` absent, `path`.001, ...
    there), the handle is a parts.Joined over them and a member may span two parts."""

    def _split(self):
        """The parts of this tar, or [] when it is one file (or missing)."""
        return [] if os.path.lexists(self.path) else parts.find(self.path)

    def identity(self):
        if self._identity is None:
            found = self._split()
            size = sum(os.path.getsize(p) for p in found) if found else \
                os.path.getsize(self.path)
            self._identity = (os.path.basename(self.path), size)
        return self._identity

    def stamp(self):
        found = self._split()
        return parts.stamps(found) if found else super().stamp()

    def state(self):
        found = self._split()
        return [file_state(p) for p in found] if found else super().state()

    def open(self):
        found = self._split()
        return parts.Joined(self.path, found) if found else super().open()

    def close(self, handle):
        if isinstance(handle, parts.Joined):
            handle.close()
        else:
            os.close(handle)

    def read(self, handle, offset, size):
        if isinstance(handle, parts.Joined):
            data = handle.pread(size, offset)
            if len(data) != size:
                raise _short_part(handle, offset, len(data), size)
            return data
        data = os.pread(handle, size, offset)
        if len(data) != size:
            raise _short_read(self.path, offset, len(data), size)
        return data


def _short_part(joined, offset, got, size):
    """A member of a split tar cut short: the part where its bytes stop."""
    k, inner = joined.part_of(min(offset + got, joined.size))
    if k == len(joined.parts) - 1:
        return joined.incomplete("it ends at its byte %d, inside a member that should "
                                 "run to byte %d of the tar" % (inner, offset + size))
    return UserError("%s: the part ends at byte %d, %d bytes short of its size when "
                     "the tar was indexed (a member runs to byte %d of %s). %s"
                     % (joined.parts[k], inner, joined.sizes[k] - inner, offset + size,
                        joined.path, parts.FIX))


_LOCAL = b"PK\x03\x04"


_CENTRAL = b"PK\x01\x02"


def zip64_sizes(extra, usize, csize, offset):
    """The ZIP64 extra field's values for the 32-bit fields that say 0xFFFFFFFF."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            body, i, vals = extra[pos + 4:pos + 4 + size], 0, []
            for v in (usize, csize, offset):
                if v == 0xFFFFFFFF:
                    vals.append(struct.unpack_from("<Q", body, i)[0])
                    i += 8
                else:
                    vals.append(v)
            return vals
        pos += 4 + size
    return usize, csize, offset


class ZipMembers(Container):
    """A zip archive: `offset` is a member's central-directory record, `size` its
    compressed size.  Whatever the writer's flags (data descriptors included), the
    member is checked against the central directory's CRC-32 and uncompressed size,
    and inflation stops at that size: a member that inflates to more, or claims more
    than any image, is refused."""

    def _central(self, handle, at):
        head = os.pread(handle, 46, at)
        if len(head) < 46 or head[:4] != _CENTRAL:
            raise zip_damaged(self.path, "no central-directory record at byte %d" % at)
        crc, csize, usize, nlen, xlen = struct.unpack_from("<IIIHH", head, 16)
        (local,) = struct.unpack_from("<I", head, 42)
        if 0xFFFFFFFF in (csize, usize, local):
            usize, csize, local = zip64_sizes(os.pread(handle, xlen, at + 46 + nlen),
                                               usize, csize, local)
        return crc, csize, usize, local

    def read(self, handle, offset, csize):
        path = self.path
        crc, cd_csize, usize, local = self._central(handle, offset)
        if cd_csize != csize:
            raise zip_damaged(path, "the central directory changed since it was indexed "
                              "(member at byte %d)" % offset)
        contract.check_member_size(usize, "%s: member at byte %d" % (path, local))
        head = os.pread(handle, 30, local)
        if len(head) < 30 or head[:4] != _LOCAL:
            raise zip_damaged(path, "no member header at byte %d" % local)
        _, method = struct.unpack_from("<HH", head, 6)
        nlen, xlen = struct.unpack_from("<HH", head, 26)
        raw = os.pread(handle, csize, local + 30 + nlen + xlen)
        if len(raw) < csize:
            raise zip_damaged(path, "truncated inside the member at byte %d" % local)
        if method == 0:
            data = raw
        elif method == 8:
            inflater = zlib.decompressobj(-15)
            try:
                data = inflater.decompress(raw, usize + 1)
                if len(data) <= usize and not inflater.eof:
                    data += inflater.flush()
            except zlib.error as err:
                raise zip_damaged(path, "member at byte %d does not inflate (%s)"
                                  % (local, err))
            if len(data) > usize:
                raise zip_damaged(path, "member at byte %d inflates to more than the %d "
                                  "bytes the central directory gives it" % (local, usize))
            if not inflater.eof:
                raise zip_damaged(path, "member at byte %d ends before its deflate stream "
                                  "does" % local)
        else:
            raise UserError("%s: member at byte %d uses compression method %d; only "
                            "stored and deflated members are supported"
                            % (path, local, method))
        if len(data) != usize:
            raise zip_damaged(path, "member at byte %d holds %d bytes, the central "
                              "directory says %d" % (local, len(data), usize))
        if zlib.crc32(data) != crc:
            raise zip_damaged(path, "CRC-32 mismatch in the member at byte %d" % local)
        return data


_OPEN = {}   # container -> (what the file on disk was, handle): this process's archives


def _keep_open():
    """How many archives a process keeps open: every file of a spooled copy (a few
    hundred) if the descriptor limit allows, else fewer (least recently used
    closed first)."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ValueError, OSError):
        return 8
    return max(8, min(512, soft // 4)) if soft > 0 else 512


_KEEP_OPEN = _keep_open()


def _shared_handle(container):
    seen = container.stamp()
    held = _OPEN.get(container)
    if held is not None and held[0] == seen:
        _OPEN[container] = _OPEN.pop(container)        # most recently used last
        return held[1]
    if held is not None:
        container.close(held[1])
        del _OPEN[container]
    handle = container.open()
    if held is None and len(_OPEN) >= _KEEP_OPEN:          # oldest first
        old = next(iter(_OPEN))
        old.close(_OPEN.pop(old)[1])
    _OPEN[container] = (seen, handle)
    return handle


class Reader:
    """Reads the images of one batch (a shard, an extraction job).  Archives are
    looked up once per batch and stay open for the process's life; use as a context
    manager or call close() at the end of the batch."""

    def __init__(self):
        self._handles = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._handles = {}

    def _handle(self, container):
        handle = self._handles.get(container)
        if handle is not None:
            held = _OPEN.get(container)
            if held is not None and held[1] == handle:
                return handle
            # closed since (more archives than _KEEP_OPEN were read): its number
            # may belong to another file now
        handle = self._handles[container] = _shared_handle(container)
        return handle

    def prefetch(self, container, offset, size):
        """Hint that these bytes of an archive read in place will be read soon
        (POSIX_FADV_WILLNEED: the kernel queues the read and returns); a no-op for
        other containers and where the hint does not exist."""
        if type(container) is not Slices or size <= 0 or \
                not hasattr(os, "posix_fadvise"):
            return
        try:
            handle = self._handle(container)
            if isinstance(handle, parts.Joined):
                handle.advise(offset, size)
            else:
                os.posix_fadvise(handle, offset, size, os.POSIX_FADV_WILLNEED)
        except (OSError, UserError):
            pass          # the read itself will report a real problem

    def read(self, container, offset, size):
        if not container.shared:
            return container.read(None, offset, size)
        return container.read(self._handle(container), offset, size)
