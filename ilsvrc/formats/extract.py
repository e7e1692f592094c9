"""Extraction on disk: `build.sh --extract` unpacks the release tars into
DIR/train/<synset>/ and DIR/validation/ straight from the index, and
preprocess_imagenet_validation_data.py sorts a flat validation directory into
<synset>/ folders.

Every file is written under a temporary name and renamed when complete; a file that
is already there with the right size is kept, so an interrupted extraction resumes.
Names were checked when the tars were indexed (no '/', no '..', no links), so nothing
is written outside those directories.
"""

import fnmatch
import os
import shutil
import sys

from ilsvrc import contract, fsutil
from ilsvrc.progress import Progress
from ilsvrc.sources import containers
from ilsvrc.sources.listing import IMAGE_PATTERN
from ilsvrc.errors import UserError


def _extract_group(job):
    """Worker: copy the members of one group into directory `dest`."""
    dest, members = job
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as err:
        raise UserError("cannot create %s for --extract: %s. Choose a writable directory "
                        "(or fix its permissions), then rerun." % (dest, err.strerror or err))
    done = 0
    with containers.Reader() as reader:   # each tar opened once per job, not per image
        for name, path, offset, size in members:
            target = os.path.join(dest, name)
            try:
                if os.path.isfile(target) and os.path.getsize(target) == size:
                    continue
                with fsutil.partial_file(target) as f:
                    f.write(reader.read(path, offset, size))
                done += 1
            except OSError as err:
                raise UserError("cannot write %s: %s. Free space or fix permissions, "
                                "then rerun the same command." % (target,
                                                                  err.strerror or err))
    return done


JOB_SIZE = 2000   # images per extraction job


def _jobs(listing, dest_root):
    groups = {}
    for i in range(len(listing)):
        groups.setdefault(listing.group_of(i), []).append(i)
    for group, idx in groups.items():
        dest = os.path.join(dest_root, group) if group else dest_root
        for start in range(0, len(idx), JOB_SIZE):
            yield dest, [(listing.names[i],) + listing.locate(i)[:3]
                         for i in idx[start:start + JOB_SIZE]]


def _check_no_strays(listing, dest_root):
    """Refuse *.JPEG files in the target directories that the source does not hold:
    every later conversion from the tree would take them as images."""
    expected = {}
    for i in range(len(listing)):
        group = listing.group_of(i)
        expected.setdefault(os.path.join(dest_root, group) if group else dest_root,
                            set()).add(listing.names[i])
    for dest, names in expected.items():
        strays = sorted(n for n in os.listdir(dest)
                        if fnmatch.fnmatchcase(n, IMAGE_PATTERN) and n not in names)
        if strays:
            raise UserError("%s holds %d *.JPEG file(s) that are not in the source (%s%s); "
                            "a conversion from this directory would take them as images. "
                            "Remove them and rerun." % (dest, len(strays),
                                                        ", ".join(strays[:3]),
                                                        ", ..." if len(strays) > 3 else ""))


def extract(train, val, raw_dir, label_file, runner, log=None):
    """Unpack both listings under raw_dir; copy the label file to synset_labels.txt
    (label_file None: no copy).  Images of a listing with groups go into
    <split>/<group>/, the others straight into <split>/.  Progress (images, MB/s,
    ETA) on `log` (stderr); images already there count as done."""
    total = 0
    progress = Progress(len(train) + len(val), "extracting", stream=log or sys.stderr)
    for listing, sub in ((train, "train"), (val, "validation")):
        dest_root = os.path.join(raw_dir, sub)
        for (_, members), n in runner.run(_extract_group, _jobs(listing, dest_root)):
            total += n
            progress.update(len(members), sum(m[3] for m in members))
        _check_no_strays(listing, dest_root)
    progress.finish()
    target = os.path.join(raw_dir, "synset_labels.txt")
    if label_file is not None and not os.path.exists(target):
        try:
            shutil.copyfile(label_file, target)
        except OSError as err:
            raise UserError("cannot write %s: %s. Fix the directory's permissions, then "
                            "rerun." % (target, err.strerror or err))
    return total


# --------------------------------------------------------------------------- sorting

class MissingImage(UserError):
    pass


def sort_validation(val_dir, label_file):
    """Move `val_dir/ILSVRC2012_val_%08d.JPEG` number k into `val_dir/<synset>/`, the
    synset being line k of `label_file` (what preprocess_imagenet_validation_data.py
    does).

    Re-runnable: images already in their synset folder are left there.  Every image
    is looked for before anything moves.  A partial validation set (some of the
    numbered images there) is sorted as far as it goes; none there at all is
    MissingImage.  Returns (files moved, [names of the label file's images not
    there]).
    """
    labels = contract.read_synset_file(label_file, "validation label file", known=None)
    moves, missing, placed = [], [], 0
    for k, synset in enumerate(labels):
        name = "ILSVRC2012_val_%08d.JPEG" % (k + 1)
        src, dst = os.path.join(val_dir, name), os.path.join(val_dir, synset, name)
        if os.path.isfile(src):
            moves.append((src, dst))
        elif os.path.isfile(dst):
            placed += 1
        else:
            missing.append((src, dst))
    if missing and not moves and not placed:
        raise MissingImage("failed to find %s (nor %s). Extract ILSVRC2012_img_val.tar "
                           "into %s first." % (missing[0] + (val_dir,)))
    try:
        for synset in sorted({os.path.basename(os.path.dirname(d)) for _, d in moves}):
            os.makedirs(os.path.join(val_dir, synset), exist_ok=True)
        for src, dst in moves:
            os.replace(src, dst)
    except OSError as err:
        raise UserError("cannot sort %s: %s" % (val_dir, err.strerror or err))
    return len(moves), [os.path.basename(src) for src, _ in missing]
