"""Known vectors for the pure planning functions: upstream's seeded orders, shard
boundaries and labels."""

import hashlib
import json

import pytest

from ilsvrc import plan, shipped


def _sha(values):
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


@pytest.mark.parametrize("seed,n,expected", [
    (0, 5, [2, 1, 0, 4, 3]),
    (0, 10, [7, 8, 1, 5, 3, 4, 2, 0, 9, 6]),
    (0, 20, [10, 18, 16, 14, 0, 17, 11, 2, 3, 9, 5, 7, 4, 19, 6, 15, 8, 1, 13, 12]),
    (12345, 5, [4, 2, 1, 0, 3]),
    (12345, 10, [8, 7, 3, 5, 1, 2, 9, 4, 0, 6]),
    (12345, 20, [16, 18, 3, 8, 19, 10, 7, 14, 12, 1, 5, 2, 15, 17, 4, 6, 11, 9, 0, 13]),
])
def test_python3_shuffle_vectors(seed, n, expected):
    assert plan.seeded_permutation(n, seed) == expected


@pytest.mark.parametrize("seed,n,start,sha", [
    (0, 1281167, [1082000, 444988, 795600, 317966, 440284, 71498, 65702, 1213218],
     "359ce3e598b469ce"),
    (12345, 50000, [33095, 14355, 19271, 49917, 26903, 3618, 42688, 20861],
     "723a20741a3b0643"),
    (12345, 1281167, [504188, 123635, 706554, 625400, 1072876, 1057915, 541156, 727281],
     "46d493e2a0d049f9"),
])
def test_full_size_shuffles(seed, n, start, sha):
    order = plan.seeded_permutation(n, seed)
    assert order[:8] == start
    assert _sha(order) == sha


def test_apply_order_takes_items_by_index():
    assert plan.apply_order(["a", "b", "c", "d", "e"], [2, 1, 0, 4, 3]) == list("cbaed")


@pytest.mark.parametrize("n,shards,expected", [
    (10, 4, [(0, 3), (3, 6), (6, 9), (9, 10)]),
    (7, 3, [(0, 3), (3, 6), (6, 7)]),
    (2, 4, [(0, 1), (1, 2), (2, 2), (2, 2)]),
    (0, 3, [(0, 0)] * 3),
])
def test_ceil_shards_small_vectors(n, shards, expected):
    assert plan.ceil_shards(n, shards) == expected


def test_ceil_shards_imagenet_sizes():
    train = plan.ceil_shards(1281167, 1024)
    sizes = [e - s for s, e in train]
    assert sizes[:1023] == [1252] * 1023 and sizes[1023] == 371
    val = [e - s for s, e in plan.ceil_shards(50000, 128)]
    assert val[:127] == [391] * 127 and val[127] == 343
    assert train[-1][1] == 1281167 and sum(sizes) == 1281167  # no py2 tail loss


def test_labels_match_spec_examples():
    synsets = shipped.read_lines(shipped.SYNSETS_FILE)
    val = shipped.read_lines(shipped.VAL_LABELS_FILE)
    labels = plan.labels_from_synsets(val + synsets)
    assert len(labels) == 1000
    assert labels["n01440764"] == 1
    assert labels["n02105855"] == 231
    assert labels["n15075141"] == 1000
    # same numbering as slim's "line in the synsets file"
    assert all(labels[s] == i + 1 for i, s in enumerate(synsets))


def test_validation_labels_by_number_for_any_subset():
    lines = ["s%d" % k for k in range(1, 11)]
    names = ["ILSVRC2012_val_%08d.JPEG" % k for k in (2, 5, 9)]
    assert plan.validation_synsets(names, lines, "L") == ["s2", "s5", "s9"]


def test_validation_number_beyond_label_file_is_an_error():
    with pytest.raises(ValueError, match="labels.txt has 3 lines.*ILSVRC2012_val_00000007"):
        plan.validation_synsets(["ILSVRC2012_val_00000007.JPEG"], ["a", "b", "c"],
                                "labels.txt")


def test_unnumbered_names_need_one_line_per_image():
    assert plan.validation_synsets(["a.JPEG", "b.JPEG"], ["x", "y"], "L") == ["x", "y"]
    with pytest.raises(ValueError, match="L has 1 lines for 2 validation images"):
        plan.validation_synsets(["a.JPEG", "b.JPEG"], ["x"], "L")


def test_find_sorted_and_shards_of():
    keys = ["b/2", "a/1", "c/3", "a/0"]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    assert sorted(plan.find_sorted(keys, order, ["a/1", "c/3", "z/9", "a/"])) == [1, 2]
    ranges = plan.ceil_shards(5, 4) + [(5, 5)]      # (0,2) (2,4) (4,5) (5,5) (5,5)
    assert plan.shards_of(ranges, [0, 3, 4]) == {0, 1, 2}
    assert plan.shards_of(ranges, []) == frozenset()
    assert plan.shards_of([(0, 0), (0, 0), (0, 3)], [0, 2]) == {2}
