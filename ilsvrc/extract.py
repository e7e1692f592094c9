"""`build.sh --extract`: unpack the release tars into DIR/train/<synset>/ and
DIR/validation/, as the seed README describes, straight from the index.

Every file is written under a temporary name and renamed when complete; a file that
is already there with the right size is kept, so an interrupted extraction resumes.
Names were checked when the tars were indexed (no '/', no '..', no links), so nothing
is written outside those directories.
"""

import os
import shutil

from ilsvrc import sources
from ilsvrc.errors import UserError


def _extract_group(job):
    """Worker: copy the members of one group into directory `dest`."""
    dest, members = job
    os.makedirs(dest, exist_ok=True)
    done = 0
    for name, path, offset, size in members:
        target = os.path.join(dest, name)
        try:
            if os.path.isfile(target) and os.path.getsize(target) == size:
                continue
            tmp = os.path.join(dest, "." + name + ".partial")
            with open(tmp, "wb") as f:
                f.write(sources.read_at(path, offset, size))
            os.replace(tmp, target)
            done += 1
        except OSError as err:
            raise UserError("cannot write %s: %s. Free space or fix permissions, then "
                            "rerun the same command." % (target, err.strerror or err))
    return done


def _jobs(listing, dest_root, chunk=2000):
    groups = {}
    for i in range(len(listing)):
        groups.setdefault(listing.group_of(i), []).append(i)
    for group, idx in groups.items():
        dest = os.path.join(dest_root, group) if group else dest_root
        for start in range(0, len(idx), chunk):
            yield dest, [(listing.names[i],) + listing.locate(i)[:3]
                         for i in idx[start:start + chunk]]


def extract(train, val, raw_dir, label_file, runner):
    """Unpack both listings under raw_dir; copy the label file to synset_labels.txt
    (label_file None: no copy).  Images of a listing with groups go into
    <split>/<group>/, the others straight into <split>/."""
    total = 0
    for listing, sub in ((train, "train"), (val, "validation")):
        for _, n in runner.run(_extract_group, _jobs(listing, os.path.join(raw_dir, sub))):
            total += n
    target = os.path.join(raw_dir, "synset_labels.txt")
    if label_file is not None and not os.path.exists(target):
        shutil.copyfile(label_file, target)
    return total
