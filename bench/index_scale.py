"""Index and plan cost at full ImageNet scale, without any image bytes.

    python bench/index_scale.py [MEMBERS]     (default 1,281,167)

Builds a synthetic training Listing of MEMBERS tar members in 1000 classes (real
synset names, real-looking member names), a 50,000-image validation Listing, plans
the official format's splits and computes their fingerprints and every shard's item
list, as the main process of a conversion does.  Prints JSON: seconds per step and
the memory each step adds to the process (resident set, bytes per member), plus the
process's peak RSS.
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("bench/index_scale.py")

from ilsvrc import shipped  # noqa: E402
from ilsvrc.formats import official  # noqa: E402
from ilsvrc.write import resume  # noqa: E402
from ilsvrc.sources import tarindex  # noqa: E402
from ilsvrc.sources.containers import Slices  # noqa: E402
from ilsvrc.sources.listing import Listing  # noqa: E402

N_TRAIN = 1281167
N_VAL = 50000


class Unread(Slices):
    """A release tar that is never opened: its identity (name, size) is made up."""

    def identity(self):
        return os.path.basename(self.path), 150 * 10 ** 9


def synthetic(n_train, n_val):
    synsets = shipped.read_lines(shipped.SYNSETS_FILE)
    train = Listing("train")
    train.containers = [Unread("/data/" + tarindex.TRAIN_TAR)]
    train.inner_tars = True
    offset = 10240
    for i in range(n_train):
        synset = synsets[i * len(synsets) // n_train]
        train.add("%s_%d.JPEG" % (synset, i % 1300 + 1), synset, 0, offset, 110000)
        offset += 110592
    val = Listing("validation")
    val.containers = [Unread("/data/" + tarindex.VAL_TAR)]
    for k in range(1, n_val + 1):
        val.add("ILSVRC2012_val_%08d.JPEG" % k, "", 0, k * 131072, 130000)
    return train, val, synsets


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv):
    p = argparse.ArgumentParser(prog="bench/index_scale.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("members", metavar="MEMBERS", type=int, nargs="?", default=N_TRAIN,
                   help="training members of the synthetic listing (default 1,281,167)")
    n = p.parse_args(argv).members
    out = {"members": n}
    base = rss()
    t = time.monotonic()
    train, val, synsets = synthetic(n, N_VAL)
    out["listing_s"] = time.monotonic() - t
    listing_bytes = rss() - base
    out["listing_bytes_per_member"] = listing_bytes / (n + N_VAL)
    labels = [synsets[(k * 7) % len(synsets)] for k in range(N_VAL)]
    t = time.monotonic()
    splits, _ = official.make_splits(train, val, labels, "labels", "/nonexistent/out")
    out["plan_s"] = time.monotonic() - t
    plan_bytes = rss() - base - listing_bytes
    out["plan_bytes_per_member"] = plan_bytes / (n + N_VAL)
    t = time.monotonic()
    for split in splits:
        resume.fingerprint(split, "header")
    out["fingerprint_s"] = time.monotonic() - t
    t = time.monotonic()
    largest = 0
    for split in splits:
        for k in range(split.num_shards):
            largest = max(largest, len(split.shard_items(k)))
    out["shard_items_s"] = time.monotonic() - t
    out["largest_shard_items"] = largest
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["base_rss_bytes"] = base
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
