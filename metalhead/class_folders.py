"""The opt-in class-folder view of a prepared tree (prepare.py --class-folders DIR):
DIR/train/<synset>/ and DIR/val/<synset>/ made of hard links to the images under
OUT/ILSVRC (symbolic links when DIR is on another file system), never copies.

All 1000 class folders are made in both splits, so a reader that numbers the folders
in sorted order (PyTorch ImageFolder, Keras image_dataset_from_directory, the Lux.jl
ImageNet example) gets the same class index on a partial set as on the full one.
Re-runnable: links already right are kept, wrong ones replaced; anything else found in
DIR/train or DIR/val stops the run (a folder reader would take it for an image).
Standard library only.
"""
import errno
import os
import sys

from layout_check import CLS_LOC, TRAIN_FILE, VAL_FILE, Failure, list_dir

TMP_SUFFIX = ".class-folders-tmp"


def _inside(path, folder):
    return os.path.commonpath([path, folder]) == folder


def wanted_links(out, synsets, solution):
    """{relative path under DIR: source path} of the view."""
    root = os.path.join(out, *CLS_LOC)
    want = {}
    for synset in synsets:
        for name in list_dir(os.path.join(root, "train", synset)):
            match = TRAIN_FILE.match(name)
            if match and match.group(1) == synset:
                want["train/%s/%s" % (synset, name)] = os.path.join(root, "train", synset, name)
    for name in list_dir(os.path.join(root, "val")):
        match = VAL_FILE.match(name)
        if match and int(match.group(1)) in solution:
            want["val/%s/%s" % (solution[int(match.group(1))], name)] = \
                os.path.join(root, "val", name)
    return want


def _stray(dest, synsets, want):
    """Entries under DIR/train and DIR/val that are not part of the view (our own
    temporary files from an interrupted run are removed)."""
    stray = []
    known = set(synsets)
    for split in ("train", "val"):
        for entry in list_dir(os.path.join(dest, split)):
            folder = os.path.join(dest, split, entry)
            if entry not in known or not os.path.isdir(folder) or os.path.islink(folder):
                stray.append(folder)
                continue
            for name in list_dir(folder):
                path = os.path.join(folder, name)
                if name.endswith(TMP_SUFFIX):
                    os.remove(path)
                elif "%s/%s/%s" % (split, entry, name) not in want:
                    stray.append(path)
    return stray


def _is_link_to(path, src):
    if os.path.islink(path):
        return os.readlink(path) == src
    try:
        return os.path.samefile(path, src)
    except OSError:
        return False


def build(out, dest, synsets, solution, log=None):
    """Make or refresh the view under dest; returns (made, kept, kind)."""
    log = log or sys.stderr
    out, dest = os.path.abspath(out), os.path.abspath(dest)
    ilsvrc = os.path.realpath(os.path.join(out, "ILSVRC"))
    real = os.path.realpath(dest)
    if real == os.path.realpath(out) or _inside(real, ilsvrc) or _inside(ilsvrc, real):
        raise Failure("--class-folders %s overlaps %s: choose a folder outside the "
                      "ILSVRC tree (for example %s)." % (dest, os.path.join(out, "ILSVRC"),
                                                        os.path.join(out, "class-folders")))
    want = wanted_links(out, synsets, solution)
    stray = _stray(dest, synsets, want)
    if stray:
        raise Failure("%s holds %d entries that are not images of the view (first: %s); a "
                      "folder reader would take them as images or classes: remove them, "
                      "then rerun." % (dest, len(stray), stray[0]))
    made = kept = 0
    symlink = False
    try:
        for split in ("train", "val"):
            for synset in synsets:
                os.makedirs(os.path.join(dest, split, synset), exist_ok=True)
        for rel in sorted(want):
            src, path = want[rel], os.path.join(dest, *rel.split("/"))
            if os.path.lexists(path) and _is_link_to(path, src):
                kept += 1
                continue
            tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + TMP_SUFFIX)
            if not symlink:
                try:
                    os.link(src, tmp)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
                    symlink = True
            if symlink:
                os.symlink(src, tmp)
            os.replace(tmp, path)
            made += 1
    except OSError as e:
        raise Failure("cannot make the class folders in %s (%s: %s): fix that, then rerun."
                      % (dest, e.filename or dest, e.strerror or e))
    kind = "symbolic links, as hard links are not possible there" if symlink else "hard links"
    log.write("class folders: %s/train/<synset>/ and %s/val/<synset>/: %d links made, %d "
              "already there (%s; no copies)\n" % (dest, dest, made, kept, kind))
    return made, kept, kind
