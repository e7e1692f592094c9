"""The store interface over the local file system (CRC32C computed on demand)."""

import os

from ilsvrc import crc32c
from ilsvrc.errors import UserError
from ilsvrc.storage.base import Exists, Info, short_read


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
                    crc = crc32c.extend(crc, block)
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
                    got = crc32c.extend(got, block)
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
