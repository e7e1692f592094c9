#!/usr/bin/env python3
"""Unpack the Kaggle ImageNet archive into the folder layout Metalhead.jl reads, then check it.

    python3 metalhead/prepare.py ZIP_OR_DIR --out OUT [--expect-full]
    python3 metalhead/prepare.py --verify-only --out OUT [--expect-full]

Accepts every layout Kaggle has served: imagenet-object-localization-challenge.zip
holding ILSVRC/... and the LOC_* files (now), the same zip holding
imagenet_object_localization_patched2019.tar.gz and the LOC_* files (2019), and the 2018
download, imagenet_object_localization.tar.gz with the LOC_* files beside it in a folder;
also a .tar.gz given directly (LOC_* files beside it are taken too), or a folder with an
unpacked ILSVRC/ tree.
Produces OUT/ILSVRC/Data/CLS-LOC/{train/<synset>/,val/,test/} and OUT/LOC_*.

Members are streamed straight from the archive (the inner .tar.gz is never written to
disk), each file goes to a temporary name and is renamed when complete, and files
already present with the right size are skipped, so a rerun after an interruption
finishes the job. Standard library only.
"""
import argparse
import gzip
import os
import stat
import sys
import tarfile
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import class_folders  # noqa: E402
from layout_check import Failure, read_solution, shipped_lists, verify  # noqa: E402
from ilsvrc import fsutil  # noqa: E402  (layout_check put the checkout on the path)
from ilsvrc.errors import report  # noqa: E402
from ilsvrc.progress import Progress  # noqa: E402

ZIP_NAME = "imagenet-object-localization-challenge.zip"
INNER_TAR = "imagenet_object_localization_patched2019.tar.gz"   # inside the 2019 zip
OLD_TAR = "imagenet_object_localization.tar.gz"   # the 2018 download, LOC_* files beside it
TARS = (INNER_TAR, OLD_TAR)
TMP_SUFFIX = fsutil.PARTIAL_SUFFIX
CHUNK = 1 << 20
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(REPO, "slim", "datasets")
READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError)


def placement(name, archive):
    """Where member `name` goes under OUT, as a relative path; refuses anything unsafe."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if fsutil.escapes(name):
        raise Failure("%s: member '%s' %s; refusing to unpack it. Download the archive "
                      "again from Kaggle." % (archive, name, "points outside the output folder"
                                              if ".." in parts else
                                              "has an absolute or Windows path"))
    if "ILSVRC" in parts:  # tolerate a wrapping folder above ILSVRC/
        parts = parts[parts.index("ILSVRC"):]
    elif parts and parts[-1].startswith("LOC_"):
        parts = parts[-1:]
    return "/".join(parts)


class Writer:
    """Puts files under OUT atomically and skips those already complete."""

    def __init__(self, out):
        self.out = os.path.abspath(out)
        self.written = self.skipped = 0
        self.progress = Progress(None, "prepare", unit="files")

    def target(self, rel):
        path = os.path.join(self.out, *rel.split("/"))
        if os.path.commonpath([self.out, os.path.abspath(path)]) != self.out:
            raise Failure("refusing to write %s outside %s" % (path, self.out))
        return path

    def mkdir(self, rel):
        if rel:
            try:
                os.makedirs(self.target(rel), exist_ok=True)
            except OSError as e:
                raise Failure("cannot create %s (%s): fix that, then rerun."
                              % (self.target(rel), e.strerror or e))

    def _begin(self, rel, size):
        """(final path, temporary path) for a file still to write, or None when a
        file of that size is already there (counted as skipped)."""
        path = self.target(rel)
        if os.path.isfile(path) and os.path.getsize(path) == size:
            self.skipped += 1
            self._progress(rel)
            return None
        folder, base = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        fsutil.discard_partials(path)   # what an interrupted earlier run left
        return path, fsutil.partial_path(path)

    def put(self, rel, size, open_member, archive):
        paths = self._begin(rel, size)
        if paths is None:
            return
        path, tmp = paths
        done = 0
        try:
            src = open_member()
        except READ_ERRORS as e:
            raise Failure(damaged(archive, rel, e))
        try:
            with src, open(tmp, "wb") as dst:
                while True:
                    try:
                        chunk = src.read(CHUNK)
                    except READ_ERRORS as e:
                        raise Failure(damaged(archive, rel, e))
                    if not chunk:
                        break
                    dst.write(chunk)
                    done += len(chunk)
        except OSError as e:
            raise Failure("cannot write %s (%s): free disk space or fix permissions, then rerun."
                          % (tmp, e.strerror or e))
        if done != size:
            raise Failure(damaged(archive, rel, "%d of %d bytes" % (done, size)))
        os.replace(tmp, path)
        self.written += 1
        self._progress(rel)

    def link_or_copy(self, src_path, rel):
        """Take a file from an unpacked tree: hard link when possible, else copy."""
        size = os.path.getsize(src_path)
        paths = self._begin(rel, size)
        if paths is None:
            return
        path, tmp = paths
        try:
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.link(src_path, tmp)
        except OSError:
            return self.put(rel, size, lambda: open(src_path, "rb"), src_path)
        os.replace(tmp, path)
        self.written += 1
        self._progress(rel)

    def _progress(self, rel):
        size = os.path.getsize(self.target(rel))
        self.progress.update(1, size)


def damaged(archive, rel, why):
    return ("%s is truncated or damaged (reading %s: %s): if the download was interrupted, "
            "rerun metalhead/download.sh to finish it, otherwise delete the archive and download "
            "it again; then rerun prepare.py." % (archive, rel, why))


def from_zip(path, writer):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        hint = " (the download is unfinished)" if os.path.exists(path + ".kaggle-partial") else ""
        raise Failure("%s is not a complete zip archive%s (%s): rerun metalhead/download.sh to "
                      "finish or redo the download, then rerun prepare.py." % (path, hint, e))
    with zf:
        members, inner = [], []
        for info in zf.infolist():  # check every name before writing anything
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise Failure("%s: member '%s' is a symbolic link; refusing to unpack it. "
                              "Download the archive again from Kaggle." % (path, info.filename))
            rel = placement(info.filename, path)
            if rel.rsplit("/", 1)[-1] in TARS:
                inner.append(info)
            elif rel:
                members.append((rel, info))
        for rel, info in members:
            if info.is_dir():
                writer.mkdir(rel)
            else:
                writer.put(rel, info.file_size, lambda i=info: zf.open(i), path)
        for info in inner:
            label = "%s (member %s)" % (path, info.filename)
            try:
                stream = zf.open(info)
            except READ_ERRORS as e:
                raise Failure(damaged(path, info.filename, e))
            with stream:
                from_tar(stream, label, writer)


def from_tar(fileobj, label, writer):
    """Unpack a .tar.gz read front to back (no seeking, so it works on a zip member).

    tarfile's own "r|gz" stops quietly when the data ends early, so the gzip layer is
    gzip.GzipFile, and it is read to its trailer, whose CRC and length catch truncation.
    """
    try:
        gz = gzip.GzipFile(fileobj=fileobj, mode="rb")
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                rel = placement(member.name, label)
                if member.isdir():
                    writer.mkdir(rel)
                elif member.isreg():
                    writer.put(rel, member.size, lambda m=member: tar.extractfile(m), label)
                else:
                    kind = "link" if (member.issym() or member.islnk()) else "special file"
                    raise Failure("%s: member '%s' is a %s; refusing to unpack it. Download the "
                                  "archive again from Kaggle." % (label, member.name, kind))
        while gz.read(CHUNK):
            pass
    except Failure:
        raise
    except READ_ERRORS as e:
        raise Failure(damaged(label, "the tar stream", e))


def from_tree(src, writer):
    """An already unpacked folder (ILSVRC/ and LOC_* files)."""
    src = os.path.abspath(src)
    for top, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(top, name)
            rel = placement(os.path.relpath(full, src).replace(os.sep, "/"), src)
            if not (rel.startswith("ILSVRC/") or rel.startswith("LOC_")) or name.endswith(TMP_SUFFIX):
                continue
            if os.path.islink(full):
                raise Failure("%s is a symbolic link; copy the real file there, then rerun." % full)
            writer.link_or_copy(full, rel)


def loc_files_beside(folder, writer):
    """The LOC_* files next to a .tar.gz (the 2018 download, or an unzipped 2019 zip):
    linked or copied; a LOC_<name>.zip holding LOC_<name> is unpacked."""
    for name in sorted(os.listdir(folder)):
        full = os.path.join(folder, name)
        if not name.startswith("LOC_") or name.endswith(TMP_SUFFIX) or not os.path.isfile(full):
            continue
        if os.path.islink(full):
            raise Failure("%s is a symbolic link; copy the real file there, then rerun." % full)
        if name.endswith(".zip") and not os.path.exists(os.path.join(folder, name[:-4])):
            from_loc_zip(full, name[:-4], writer)
        elif not name.endswith(".zip"):
            writer.link_or_copy(full, name)


def from_loc_zip(path, want, writer):
    """LOC_x.csv.zip, as Kaggle serves single files: exactly the member LOC_x.csv."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) != 1 or members[0].filename.rsplit("/", 1)[-1] != want:
                raise Failure("%s should hold just %s; download it again from Kaggle."
                              % (path, want))
            writer.put(want, members[0].file_size, lambda: zf.open(members[0]), path)
    except (zipfile.BadZipFile, OSError) as e:
        raise Failure("%s is not a complete zip archive (%s): download it again from Kaggle, "
                      "then rerun prepare.py." % (path, e))


def from_tar_file(tar_path, writer):
    loc_files_beside(os.path.dirname(os.path.abspath(tar_path)), writer)
    with open(tar_path, "rb") as f:
        from_tar(f, tar_path, writer)


def unpack(src, out):
    """Unpack the archive (any layout Kaggle has served) at src into out."""
    writer = Writer(out)
    real_src, real_out = os.path.realpath(src), os.path.realpath(writer.out)
    if os.path.isdir(src) and real_src != real_out and \
            os.path.commonpath([real_src, real_out]) == real_src:
        raise Failure("--out %s is inside the source folder %s, so the copy would be "
                      "copied into itself; choose an --out outside it." % (out, src))
    os.makedirs(writer.out, exist_ok=True)
    if os.path.isdir(src):
        tars = [os.path.join(src, t) for t in TARS if os.path.isfile(os.path.join(src, t))]
        if os.path.isfile(os.path.join(src, ZIP_NAME)):
            from_zip(os.path.join(src, ZIP_NAME), writer)
        elif tars:
            from_tar_file(tars[0], writer)
        elif os.path.isdir(os.path.join(src, "ILSVRC")):
            if os.path.realpath(src) != os.path.realpath(writer.out):
                from_tree(src, writer)
        else:
            raise Failure("%s holds neither %s, %s, %s nor an ILSVRC/ folder: pass the "
                          "downloaded archive or the folder it is in."
                          % (src, ZIP_NAME, INNER_TAR, OLD_TAR))
    elif zipfile.is_zipfile(src) or src.endswith(".zip"):
        from_zip(src, writer)
    elif src.endswith((".tar.gz", ".tgz")):
        from_tar_file(src, writer)
    else:
        raise Failure("%s is not a .zip, a .tar.gz or a folder: pass the archive from "
                      "metalhead/download.sh." % src)
    for split in ("train", "val", "test"):
        os.makedirs(os.path.join(writer.out, "ILSVRC", "Data", "CLS-LOC", split), exist_ok=True)
    print("prepare: unpacked into %s: %d files written, %d already there"
          % (writer.out, writer.written, writer.skipped), file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="prepare.py",
        description="Unpack the Kaggle ImageNet archive into Metalhead's layout, then verify it.")
    parser.add_argument("src", nargs="?", metavar="ZIP_OR_DIR",
                        help="the downloaded archive, its inner .tar.gz, or a folder with either")
    parser.add_argument("--out", required=True, metavar="DIR", help="where ILSVRC/ and LOC_* go")
    parser.add_argument("--synsets", default=os.path.join(DATA_DIR, "imagenet_lsvrc_2015_synsets.txt"),
                        help="the 1000 synsets, one a line (default: %(default)s)")
    parser.add_argument("--val-labels", metavar="PATH",
                        default=os.path.join(DATA_DIR, "imagenet_2012_validation_synset_labels.txt"),
                        help="the 50,000 validation labels in file order (default: %(default)s)")
    parser.add_argument("--expect-full", action="store_true",
                        help="treat anything short of the whole release as an error")
    parser.add_argument("--verify-only", action="store_true", help="check --out as it is, unpack nothing")
    parser.add_argument("--class-folders", metavar="DIR",
                        help="after the check, also make DIR/train/<synset>/ and "
                        "DIR/val/<synset>/ of links to the images (hard links, symbolic links "
                        "across file systems; no copies), for folder-per-class readers")
    args = parser.parse_args(argv)
    if not args.verify_only and not args.src:
        parser.error("give ZIP_OR_DIR, or --verify-only to check --out as it is")
    try:
        if not args.verify_only:
            if not os.path.exists(args.src):
                raise Failure("%s does not exist: pass the archive from metalhead/download.sh."
                              % args.src)
            unpack(args.src, args.out)
        status = verify(args.out, args.synsets, args.val_labels, args.expect_full)
        if status == 0 and args.class_folders:
            synsets, _ = shipped_lists(args.synsets, args.val_labels)
            _, solution = read_solution(os.path.abspath(args.out), set(synsets))
            class_folders.build(args.out, args.class_folders, synsets, solution)
        return status
    except Failure as e:
        return report(e, "prepare")
    except KeyboardInterrupt:
        print("\nprepare: interrupted; rerun the same command to finish (finished files are "
              "kept and skipped).", file=sys.stderr)
        return 130
    except OSError as e:
        print("prepare: error: %s: %s; fix that, then rerun." % (e.filename or args.out,
                                                                   e.strerror or e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
