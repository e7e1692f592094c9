"""The record rules both stages share (records/checks.py), the destinations of the
write stage, and the jobs that go to worker processes."""

import pickle

from ilsvrc import contract
from ilsvrc.records import checks
from ilsvrc.verify import reread
from ilsvrc.write import destination, worker


def test_one_label_range_rule():
    assert checks.label_range() == (1, contract.NUM_CLASSES) == (1, 1000)
    assert checks.label_range(False, 7) == (1, 1000)    # the class count is ILSVRC's
    assert checks.label_range(True, 7) == (1, 7)        # a custom class set of 7
    assert checks.label_range(True) == (1, 1 << 62)     # custom, size unknown


def test_tally_counts_by_prefix_and_merges_pairs():
    tally = checks.Tally(["train", "validation"])
    tally.add("train", 3, {"n01": {1}})
    tally.add("train", 2, {"n01": {1}, "n02": {2}})
    assert tally.counts == {"train": 5, "validation": 0}
    assert tally.pairs == {"n01": {1}, "n02": {2}}


def test_destination_by_path():
    local, bucket = destination.at("/tmp/out"), destination.at("gs://b/out")
    assert (local.in_bucket, local.takes_lock, local.where) == (False, True, "disk")
    assert (bucket.in_bucket, bucket.takes_lock, bucket.where) == \
        (True, False, "the bucket")
    shard = local.target("/tmp/out/train-00000-of-00001", "PLAN", "/tmp/i/x.idx")
    assert shard.tmp.startswith("/tmp/out/.train-00000-of-00001.")
    assert shard.index_tmp.startswith("/tmp/i/.x.idx.")
    assert bucket.target("gs://b/out/t", "PLAN", None) == \
        destination.BucketShard("gs://b/out/t", "PLAN")


def test_jobs_and_results_survive_pickling():
    target = destination.LocalDir().target("/tmp/out/t", "PLAN")
    values = [worker.WriteJob("/tmp/out/t", [], "header", target, None),
              worker.WriteResult(1, 2, 3, None, None),
              reread.VerifyJob("train", "/tmp/out/t", {}, (1, 1000), [("a", 1)]),
              reread.ShardResult("train", 1, 16, None, {"n01": {1}})]
    for value in values:
        assert pickle.loads(pickle.dumps(value)) == value
