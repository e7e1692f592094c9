"""A Cloud Storage emulator (gcp-storage-emulator) on 127.0.0.1 for the tests.

`Emulator.start()` runs it as a child process on a free port and points the official
client at it through STORAGE_EMULATOR_HOST (worker processes inherit the variable);
`stop()` ends it and restores the environment.  What the emulator does not do as the
real service does (see docs/cloud-storage.md) is covered by tests/test_storage.py's
test double instead.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request


# `python -m gcp_storage_emulator ARGS`, except that with --in-memory it does not
# re-serialize its whole object table (as indented JSON, into an in-memory ".meta" file
# that is read back only when a Storage is constructed, i.e. never in this process) on
# every object it creates: with the thousands of shards a module's tests upload, that
# made each upload slower than the last and kept a core busy (measured: 228 s for one
# test, ~0.9 s of CPU per second).  What the emulator answers is unchanged.
_START = """
import sys
from gcp_storage_emulator import storage
_write = storage.Storage._write_config_to_file
def _write_unless_in_memory(self):
    if not self._use_memory_fs:
        _write(self)
storage.Storage._write_config_to_file = _write_unless_in_memory
from gcp_storage_emulator.__main__ import main
main(sys.argv[1:])
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self):
        self.proc, self.url, self._saved = None, None, {}

    def start(self, timeout=30):
        port = _free_port()
        self.url = "http://127.0.0.1:%d" % port
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _START, "start", "--host", "127.0.0.1",
             "--port", str(port), "--in-memory", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                break
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the storage emulator did not start")
                time.sleep(0.1)
        for key, value in (("STORAGE_EMULATOR_HOST", self.url),
                           ("GOOGLE_CLOUD_PROJECT", "test-project")):
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def stop(self):
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved = {}
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        return storage.Client(project="test-project", credentials=AnonymousCredentials())

    def bucket(self, name):
        """A new, empty bucket."""
        return self.client().create_bucket(name)

    def upload_dir(self, bucket, prefix, directory, names):
        b = self.client().bucket(bucket)
        for n in names:
            b.blob(prefix + n).upload_from_filename(os.path.join(directory, n))

    def objects(self, bucket, prefix=""):
        """{name: (bytes, generation)} of every object under prefix."""
        out = {}
        for b in self.client().list_blobs(bucket, prefix=prefix):
            gen = b.generation   # before the download, which resets the properties
            out[b.name] = (b.download_as_bytes(), gen)
        return out
