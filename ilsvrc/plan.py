"""Pure planning: order, shard boundaries, labels, and the planned splits and images.

Listings are sorted before any seeded shuffle (decision A2), so the same images give
the same shards on every machine, whatever order the filesystem or tar lists them in.
"""

import bisect
import math
import os
import random
import re
from typing import NamedTuple


def seeded_permutation(n, seed):
    """The order upstream gets from random.seed(seed); random.shuffle(list(range(n)))."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def apply_order(items, order):
    """Item j of the result is items[order[j]], as upstream applies its index list."""
    return [items[i] for i in order]


def ceil_shards(n, num_shards):
    """tensorflow/tpu sharding: chunks of ceil(n / num_shards), the tail clipped.

    Returns num_shards (start, end) ranges; trailing shards may be empty.
    """
    chunk = int(math.ceil(n / num_shards))
    return [(min(k * chunk, n), min((k + 1) * chunk, n)) for k in range(num_shards)]


def _linspace_trunc(start, stop, num):
    """numpy.linspace(start, stop, num).astype(int) without numpy: num evenly spaced
    values from start to stop inclusive, each truncated toward zero."""
    if num == 1:
        return [int(start)]
    step = (stop - start) / (num - 1)
    values = [int(i * step + start) for i in range(num - 1)]
    values.append(int(stop))
    return values


def thread_shards(n, num_shards, num_threads):
    """slim sharding: n split over threads, each thread's part over its shards.

    Returns num_shards (start, end) ranges in global shard order.
    """
    if num_shards % num_threads:
        raise ValueError("num_shards must be a multiple of num_threads")
    per_thread = num_shards // num_threads
    spacing = _linspace_trunc(0, n, num_threads + 1)
    ranges = []
    for t in range(num_threads):
        bounds = _linspace_trunc(spacing[t], spacing[t + 1], per_thread + 1)
        ranges.extend(zip(bounds[:-1], bounds[1:]))
    return ranges


def labels_from_synsets(synsets):
    """1-based labels over the sorted distinct synsets (the tensorflow/tpu rule: label
    = 1 + position in the sorted set; 0 is left for the background class)."""
    return {s: i + 1 for i, s in enumerate(sorted(set(synsets)))}


VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})\.JPEG")


def validation_synsets(names, label_lines, label_file):
    """Synset of each validation image (names in sorted order).

    When every name is `ILSVRC2012_val_<8 digits>.JPEG`, the label of image number k
    is line k of the label file, whatever subset of images is present.  Otherwise
    the file must have exactly one line per image, matched by position.  Either way a
    mismatch is an error instead of upstream's silent misalignment (decision A7).
    Raises ValueError with a message naming `label_file`.
    """
    numbers = [VAL_NAME.fullmatch(n) for n in names]
    if names and all(numbers):
        out = []
        for name, m in zip(names, numbers):
            k = int(m.group(1))
            if not 1 <= k <= len(label_lines):
                raise ValueError(
                    "%s has %d lines but there is a validation image %s (number %d). "
                    "Use the 50,000-line ILSVRC2012 validation label file."
                    % (label_file, len(label_lines), name, k))
            out.append(label_lines[k - 1])
        return out
    if len(label_lines) != len(names):
        raise ValueError(
            "%s has %d lines for %d validation images, and the image names carry no "
            "ILSVRC2012 number to match them by. Give a label file with one synset per "
            "image, in sorted file-name order." % (label_file, len(label_lines), len(names)))
    return list(label_lines)


class PlannedImage(NamedTuple):
    """One image of the plan: where its bytes are and what its record holds beside them."""
    container: object   # what holds the bytes: a containers.Container (tar, zip, file)
    offset: int         # where the bytes start in the container
    size: int           # how many bytes; -1: the whole file
    where: str          # names the image in messages
    relpath: str        # '<synset>/<name>' or '<name>'; its basename is image/filename
    features: dict      # the format's own features of this image: {key: (kind, values)}


def shard_name(prefix, k, num_shards):
    return "%s-%05d-of-%05d" % (prefix, k, num_shards)


def find_sorted(keys, order, wanted):
    """The indices i with keys[i] in `wanted`, given `order`, the indices sorted by
    key (a binary search for each wanted key)."""
    found = []
    for key in wanted:
        pos = bisect.bisect_left(order, key, key=keys.__getitem__)
        if pos < len(order) and keys[order[pos]] == key:
            found.append(order[pos])
    return found


def shards_of(ranges, positions):
    """The set of k whose ranges[k] holds one of the planned `positions`."""
    starts = [start for start, end in ranges]
    out = set()
    for j in positions:
        k = bisect.bisect_right(starts, j) - 1
        while k >= 0 and not ranges[k][0] <= j < ranges[k][1]:
            k -= 1          # empty shards share their start with the next one
        if k >= 0:
            out.add(k)
    return frozenset(out)


class Split:
    """One output split: where its shards go and which items each holds.

    `ranges[k]` is the (start, end) slice of planned positions in shard k and
    `item(j)` builds the PlannedImage at planned position j.  `first`: shards to
    write before the others, the order being free (those holding an image that is
    re-encoded with TensorFlow's kernels: sent together, a small sample's are
    written by one worker, the only one that loads the kernels).
    """

    def __init__(self, prefix, out_dir, ranges, item, count, first=frozenset()):
        self.prefix, self.out_dir, self.ranges, self.item = prefix, out_dir, ranges, item
        self.count, self.first = count, first

    @property
    def num_shards(self):
        return len(self.ranges)

    def path(self, k):
        return os.path.join(self.out_dir, shard_name(self.prefix, k, self.num_shards))

    def shard_items(self, k):
        start, end = self.ranges[k]
        return [self.item(j) for j in range(start, end)]
