"""The Hugging Face copy of ILSVRC2012 (the gated dataset `ILSVRC/imagenet-1k`): which
files make the asked splits at a revision, fetching them into a directory with the
official client (huggingface_hub, imported only when used), checking each against the
size and hash the Hub reports, and the record of it all (DIR/.ilsvrc-hf-download.json)."""

import collections
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import time

from ilsvrc import fsutil
from ilsvrc.errors import UserError
from ilsvrc.progress import Progress

REPO = "ILSVRC/imagenet-1k"
PAGE = "https://huggingface.co/datasets/" + REPO
RECORD = ".ilsvrc-hf-download.json"
SPLITS = ("train", "validation", "test")
DEFAULT_SPLITS = ("train", "validation")
EXTRAS = ("classes.py",)          # small files taken with any split, when present
_TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Both layouts the repository has held: parquet shards (today) and, at older
# revisions, one tar.gz per split (train in five parts).
_SPLIT_FILES = {
    "train": re.compile(r"data/(train-\d+-of-\d+\.parquet|train_images_\d+\.tar\.gz)"),
    "validation": re.compile(r"data/(validation-\d+-of-\d+\.parquet|val_images\.tar\.gz)"),
    "test": re.compile(r"data/(test-\d+-of-\d+\.parquet|test_images\.tar\.gz)"),
}
_CHUNK = 8 << 20

# One file of the repository as the Hub reports it: sha256 for files kept in LFS
# (every data file), else None and the file's git blob id.
RemoteFile = collections.namedtuple("RemoteFile", "path size sha256 blob_id")


def client():
    """The huggingface_hub module, or the one line saying how to install it."""
    try:
        import huggingface_hub
        import huggingface_hub.constants  # noqa: F401  (submodules the package loads lazily)
        import huggingface_hub.errors  # noqa: F401
    except ImportError:
        raise UserError("the Hugging Face client (huggingface_hub) is not installed: run "
                        "./setup.sh --hf in %s, then rerun" % _TOP) from None
    return huggingface_hub


def no_token_message():
    return ("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a read token "
            "from https://huggingface.co/settings/tokens), and accept the terms at %s "
            "with that account" % PAGE)


def select(files, splits, revision):
    """The files of `files` (RemoteFile) that make `splits`, plus EXTRAS when present,
    in path order; a split the revision has no file for is an error."""
    chosen = []
    for split in splits:
        got = [f for f in files if _SPLIT_FILES[split].fullmatch(f.path)]
        if not got:
            has = [s for s in SPLITS if any(_SPLIT_FILES[s].fullmatch(f.path) for f in files)]
            raise UserError("revision %r of %s holds no %s files (data/%s-*.parquet or the "
                            "older tar.gz); it holds: %s. Choose --splits from those, or "
                            "another --revision" % (revision, REPO, split, split,
                                                    ", ".join(has) or "none"))
        chosen += got
    chosen += [f for f in files if f.path in EXTRAS]
    return sorted(set(chosen), key=lambda f: f.path)


def remote_files(siblings):
    """RemoteFile for each sibling of a `dataset_info(..., files_metadata=True)`."""
    out = []
    for s in siblings or ():
        lfs = s.lfs
        size = lfs.size if lfs else s.size
        out.append(RemoteFile(s.rfilename, size, lfs.sha256 if lfs else None, s.blob_id))
    return out


def _chain(err):
    seen = []
    while err is not None and all(err is not e for e in seen):
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _is_transport(err):
    """A connection-level failure (refused, DNS, timeout, reset) of httpx or the socket."""
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    return any(c.__name__ == "TransportError" and c.__module__.startswith("httpx")
               for c in type(err).__mro__)


def _first_line(err):
    lines = [x.strip() for x in str(err).splitlines() if x.strip()]
    return lines[0] if lines else type(err).__name__


def explain(err, endpoint, revision, dest):
    """The one line for a failure of the Hub client, or None when it is not one of ours
    to explain."""
    import huggingface_hub.errors as e
    chain = _chain(err)
    http = next((c for c in chain if isinstance(c, e.HfHubHTTPError)), None)
    status = getattr(getattr(http, "response", None), "status_code", None)
    if any(isinstance(c, e.GatedRepoError) for c in chain):
        return ("%s is gated and this token has no access to it: log in at %s with the "
                "token's account, accept the terms there, then rerun" % (REPO, PAGE))
    if any(isinstance(c, e.RevisionNotFoundError) for c in chain):
        return ("revision %r not found in %s: give --revision a branch, tag or commit "
                "listed at %s/commits/main" % (revision, REPO, PAGE))
    if any(isinstance(c, e.RepositoryNotFoundError) for c in chain):
        return ("%s not found at %s, or this token cannot see it: check HF_TOKEN or "
                "`hf auth login`, and HF_ENDPOINT if you set it" % (REPO, endpoint))
    if status == 401:
        return ("the Hub at %s rejected the token (HTTP 401): set a valid HF_TOKEN or run "
                "`hf auth login` again" % endpoint)
    if any(isinstance(c, e.OfflineModeIsEnabled) for c in chain):
        return "HF_HUB_OFFLINE is set, so nothing can be fetched: unset it and rerun"
    if any(_is_transport(c) for c in chain):
        cause = next(c for c in chain if _is_transport(c))
        return ("cannot reach the Hub at %s (%s): check the network, a proxy (HTTPS_PROXY) "
                "or HF_ENDPOINT, then rerun the same command"
                % (endpoint, _first_line(cause)))
    if http is not None:
        fix = ("try again later; rerunning the same command resumes"
               if status in (408, 429) or (status or 0) >= 500 else
               "check HF_ENDPOINT if you set it, and the token")
        return "the Hub at %s answered HTTP %s (%s): %s" % (endpoint, status,
                                                           _first_line(http), fix)
    full = next((c for c in chain if isinstance(c, OSError) and c.errno == errno.ENOSPC), None)
    if full is not None:
        where = " writing %s" % full.filename if full.filename else ""
        return ("%s: disk full%s: free space on its file system, or choose another "
                "directory, then rerun the same command" % (dest, where))
    oserr = next((c for c in chain if isinstance(c, OSError)), None)
    if oserr is not None:
        where = oserr.filename or dest
        return "%s: %s: fix it and rerun the same command" % (where, _first_line(oserr))
    return None


@contextlib.contextmanager
def explained(endpoint, revision, dest):
    """Failures of the client inside the block become one UserError line."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:
        msg = explain(err, endpoint, revision, dest)
        if msg is None:
            raise
        raise UserError(msg) from None


def local_path(dest, path):
    return os.path.join(dest, *path.split("/"))


def _stamp(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def check_space(dest, files, free=None):
    """Refuse before fetching when the files not yet here cannot fit in `dest`."""
    need = 0
    for f in files:
        stamp = _stamp(local_path(dest, f.path))
        if stamp is None or stamp[0] != f.size:
            need += f.size or 0
    free = shutil.disk_usage(dest).free if free is None else free
    if need > free:
        raise UserError("%s: the files still to fetch need %.1f GB and its file system has "
                        "%.1f GB free: free space or choose another directory, then rerun"
                        % (dest, need / 1e9, free / 1e9))
    return need


def _expected(f):
    return f.sha256 or f.blob_id


class Record:
    """DIR/.ilsvrc-hf-download.json: what was asked, the commit it resolved to, and each
    file checked so far (size, digest, mtime), so a rerun does not hash it again."""

    def __init__(self, dest, revision, commit, splits):
        self.path = os.path.join(dest, RECORD)
        self.head = {"repo": REPO, "repo_type": "dataset", "revision": revision,
                     "commit": commit, "splits": list(splits)}
        self.files = {}
        self.before = self._load()

    def _load(self):
        """{path: (digest, size, mtime_ns)} recorded by an earlier run."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            return {f["path"]: (f.get("sha256") or f.get("git_blob"), f["size"], f["mtime_ns"])
                    for f in data.get("files", ())}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def checked_before(self, f, stamp):
        return stamp is not None and self.before.get(f.path) == (_expected(f), stamp[0],
                                                                 stamp[1])

    def add(self, f, stamp):
        entry = {"path": f.path, "size": stamp[0], "mtime_ns": stamp[1]}
        entry["sha256" if f.sha256 else "git_blob"] = _expected(f)
        self.files[f.path] = entry

    def save(self, complete):
        data = dict(self.head, complete=complete,
                    when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    files=[self.files[p] for p in sorted(self.files)])
        try:
            fsutil.atomic_write(self.path, json.dumps(data, indent=1) + "\n")
        except OSError as err:
            raise UserError("%s: cannot write the download record: %s"
                            % (self.path, err.strerror or err)) from None


def _digest(path, f, progress):
    """The file's SHA-256 (LFS files) or git blob id (others), read once."""
    if f.sha256:
        h = hashlib.sha256()
    else:
        h = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)
            progress.update(0, len(chunk))


def check_file(dest, f, commit, record, progress):
    """Size and digest of a fetched file against the Hub's; hashed only when the record
    holds no check of this very file (same size and mtime).  True when it was hashed."""
    path = local_path(dest, f.path)
    stamp = _stamp(path)
    fix = "delete %s and rerun the same command" % path
    if stamp is None:
        raise UserError("%s: missing after the download of %s: rerun the same command"
                        % (path, f.path))
    if f.size is not None and stamp[0] != f.size:
        raise UserError("%s: %d bytes, but the Hub has %d for %s at commit %s: %s"
                        % (path, stamp[0], f.size, f.path, commit, fix))
    hashed = False
    if _expected(f) and not record.checked_before(f, stamp):
        try:
            got = _digest(path, f, progress)
        except OSError as err:
            raise UserError("%s: cannot read it back: %s" % (path, err.strerror)) from None
        hashed = True
        if got != _expected(f):
            kind = "SHA-256" if f.sha256 else "git blob id"
            raise UserError("%s: %s %s differs from the Hub's %s for %s at commit %s: %s"
                            % (path, kind, got, _expected(f), f.path, commit, fix))
    progress.update(1, 0)
    record.add(f, stamp)
    return hashed


def resolve(hh, revision, endpoint, dest):
    """(commit, [RemoteFile]) of the repository at `revision`, with LFS hashes."""
    odd = None
    with explained(endpoint, revision, dest):
        try:
            info = hh.HfApi().dataset_info(REPO, revision=revision, files_metadata=True)
            files = remote_files(info.siblings)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            if isinstance(err, hh.errors.HfHubHTTPError):
                raise
            odd = _first_line(err)      # not JSON, or not the Hub's fields
    if odd is not None or not getattr(info, "sha", None):
        raise UserError("%s did not answer like the Hugging Face Hub (%s): check "
                        "HF_ENDPOINT" % (endpoint, odd or "no commit sha"))
    return info.sha, files


def _prepare(dest):
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as err:
        raise UserError("%s: cannot create the directory: %s" % (dest, err.strerror)) from None


def fetch(hh, f, commit, dest, endpoint):
    """One file into dest with the client (it skips a file it finished for this commit,
    and writes a file under its own name only once complete).  True when bytes came."""
    path = local_path(dest, f.path)
    before = _stamp(path)
    with explained(endpoint, commit, dest):
        hh.hf_hub_download(REPO, f.path, repo_type="dataset", revision=commit,
                           local_dir=dest)
    return _stamp(path) != before


def sweep_partials(dest, f):
    """Remove the client's partial copies of a file now complete and checked: it names
    them after the file's sha256 under DIR/.cache/huggingface/download/, and after a
    kill -9 leaves them behind (a rerun starts such a file afresh).  Returns the count."""
    if not f.sha256:
        return 0
    parent = os.path.dirname(local_path(os.path.join(dest, ".cache", "huggingface",
                                                     "download"), f.path))
    gone = 0
    for name in os.listdir(parent) if os.path.isdir(parent) else ():
        if name.endswith(".incomplete") and ".%s." % f.sha256 in name:
            fsutil.discard(os.path.join(parent, name))
            gone += 1
    return gone


def download(dest, splits=DEFAULT_SPLITS, revision="main", out=None):
    """Fetch `splits` of ILSVRC/imagenet-1k at `revision` into `dest`, laid out as in
    the repository, each file checked; rerunning resumes.  Returns the record path."""
    out = out or sys.stderr
    hh = client()
    if not hh.get_token():
        raise UserError(no_token_message())
    endpoint = hh.constants.ENDPOINT
    commit, listed = resolve(hh, revision, endpoint, dest)
    files = select(listed, splits, revision)
    _prepare(dest)
    record = Record(dest, revision, commit, splits)
    need = check_space(dest, files)
    out.write("%s at %s (commit %s): %d files, %.1f GB, %.1f GB still to fetch into %s\n"
              % (REPO, revision, commit, len(files), sum(f.size or 0 for f in files) / 1e9,
                 need / 1e9, dest))
    progress = Progress(len(files), "checking", stream=out, unit="files")
    fetched = hashed = 0
    for i, f in enumerate(files):
        stamp = _stamp(local_path(dest, f.path))
        if stamp is None or stamp[0] != f.size:
            out.write("fetching %d/%d: %s (%.1f MB)\n" % (i + 1, len(files), f.path,
                                                          (f.size or 0) / 1e6))
            out.flush()
        fetched += fetch(hh, f, commit, dest, endpoint)
        hashed += check_file(dest, f, commit, record, progress)
        sweep_partials(dest, f)
        record.save(complete=False)
    progress.update(0, 0, force=True)
    record.save(complete=True)
    out.write("done: %d files of %s at commit %s in %s (%d fetched and %d hashed by this "
              "run); record: %s\n" % (len(files), REPO, commit, dest, fetched, hashed,
                                      record.path))
    return record.path
