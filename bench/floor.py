"""The I/O floor: read every image of the tars once and write the same bytes.

    python bench/floor.py RELEASE_DIR OUT_DIR WORKERS SHARD_BYTES [--no-fsync]
                          [--order listing|plan]

Indexes the two tars with ilsvrc.sources.tarindex (the same index the converter uses), cuts
the images into the same number of shards as the official format (1024 + 128, the
same ranges), and has WORKERS processes (no TensorFlow) copy each shard's members
with os.pread into `.NAME.partial`, padded or cut to the byte count the converter
wrote for that shard (SHARD_BYTES: a JSON file {relative path: bytes}), fsync it and
rename it.  Prints JSON.

--order listing (the default, the copy floor): shard k holds the members at
listing positions k*chunk.. in tar order, so the tars are read front to back.
--order plan: the same members in the order the converter reads them, the training
images in their seeded shuffle (official's plan: sorted by path, then seed 0), so
each shard's reads are spread over the whole training tar: the converter's I/O
pattern without any of its work.
"""

import argparse
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("bench/floor.py", needs=())

from ilsvrc import fsutil, plan, pool  # noqa: E402
from ilsvrc.formats import official  # noqa: E402
from ilsvrc.sources import tarindex  # noqa: E402


def _copy(job):
    path, src, members, nbytes, do_fsync = job
    written = 0
    fd = os.open(src, os.O_RDONLY)
    try:
        with fsutil.partial_file(path) as out:
            for offset, size in members:
                data = os.pread(fd, size, offset)
                take = min(len(data), nbytes - written)
                out.write(data[:take] if take < len(data) else data)
                written += take
            if written < nbytes:
                out.write(bytes(nbytes - written))
            out.flush()
            if do_fsync:
                os.fsync(out.fileno())
    finally:
        os.close(fd)
    return len(members)


def parse(argv):
    p = argparse.ArgumentParser(prog="bench/floor.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("release", metavar="RELEASE_DIR", help="directory holding "
                   "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar")
    p.add_argument("out", metavar="OUT_DIR", help="where the shard files go "
                   "(OUT_DIR/train/, OUT_DIR/validation/)")
    p.add_argument("workers", metavar="WORKERS", type=int, help="copying processes "
                   "(0: all in this process)")
    p.add_argument("shard_bytes", metavar="SHARD_BYTES", help="JSON file {relative "
                   "path: bytes}: the size the converter wrote for each shard")
    p.add_argument("--no-fsync", action="store_true", help="do not fsync each file "
                   "before its rename")
    p.add_argument("--order", choices=("listing", "plan"), default="listing",
                   help="the order the members are read in (default listing)")
    return p.parse_args(argv)


def main(argv):
    a = parse(argv)
    release, out, workers, do_fsync = a.release, a.out, a.workers, not a.no_fsync
    with open(a.shard_bytes) as f:
        sizes = json.load(f)
    start = time.monotonic()
    with pool.Pool(0) as runner:
        train = tarindex.index_train_tar(os.path.join(release, tarindex.TRAIN_TAR), runner)
    val = tarindex.index_flat_tar(os.path.join(release, tarindex.VAL_TAR))
    indexed = time.monotonic()
    order = a.order
    orders = {"train": range(len(train)), "validation": range(len(val))}
    if order == "plan":   # official.make_splits: sorted by path, then the seed-0 shuffle
        by_path = sorted(range(len(train)), key=train.relpath)
        orders["train"] = plan.apply_order(by_path, plan.seeded_permutation(
            len(train), official.TRAIN_SEED))
        orders["validation"] = sorted(range(len(val)), key=val.names.__getitem__)
    jobs = []
    for listing, prefix, shards in ((train, "train", 1024), (val, "validation", 128)):
        d = os.path.join(out, prefix)
        os.makedirs(d, exist_ok=True)
        src = listing.containers[0].path
        for k, (a, b) in enumerate(plan.ceil_shards(len(listing), shards)):
            rel = "%s/%s-%05d-of-%05d" % (prefix, prefix, k, shards)
            members = [(listing.offset[i], listing.size[i]) for i in orders[prefix][a:b]]
            jobs.append((os.path.join(out, rel), src, members, sizes[rel], do_fsync))
    images = len(train) + len(val)
    if workers == 0:
        for job in jobs:
            _copy(job)
    else:
        with multiprocessing.get_context("fork").Pool(workers) as p:
            for _ in p.imap_unordered(_copy, jobs):
                pass
    end = time.monotonic()
    print(json.dumps({"order": order, "images": images, "index_s": indexed - start,
                      "copy_s": end - indexed, "total_s": end - start,
                      "bytes_written": sum(sizes.values())}))


if __name__ == "__main__":
    main(sys.argv[1:])
