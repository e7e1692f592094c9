"""The record rules that the writer's in-worker check and verify share: one decoded
record against its format, the one label-range rule, the synset/label pairs read back
(`Tally`) and the ILSVRC2012 label contract over them, and reading a local shard's
records with both CRCs checked."""

import os

from ilsvrc import contract, crc32c, tfimport
from ilsvrc.errors import UserError
from ilsvrc.records import tfrecord

# The upper bound of a custom class set whose size is not known (verify without a
# plan): any positive label passes, the contract then judges the pairs.
UNBOUNDED = 1 << 62


def label_range(custom=False, num_labels=None):
    """(lowest, highest) image/class/label a record may hold: 1..1000 for ILSVRC2012;
    with a custom class set, 1..num_labels, or 1..UNBOUNDED when its size is not
    known (./verify.sh without --source)."""
    if not custom:
        return (1, contract.NUM_CLASSES)
    return (1, UNBOUNDED if num_labels is None else num_labels)


def check_record(feats, schema, label_range):
    """Problems of one decoded record against {key: kind}, as a list of strings."""
    problems = []
    keys = set(feats)
    if keys != set(schema):
        missing, extra = sorted(set(schema) - keys), sorted(keys - set(schema))
        problems.append("keys differ from the format (missing %s, extra %s)"
                        % (missing or "none", extra or "none"))
    for key, kind in schema.items():
        if key in feats and feats[key][0] != kind:
            problems.append("%s is %s, expected %s" % (key, feats[key][0], kind))
    label = feats.get("image/class/label", (None, []))[1]
    if len(label) != 1 or not label_range[0] <= label[0] <= label_range[1]:
        problems.append("image/class/label %s outside %d..%d" % (label, *label_range))
    return problems


def note_label(pairs, feats):
    """Add the record's (synset, label) to {synset: {labels}}."""
    synset = feats.get("image/class/synset", (None, [b""]))[1]
    label = feats["image/class/label"][1][0]
    key = bytes(synset[0]).decode("utf-8", "replace") if len(synset) == 1 else repr(synset)
    pairs.setdefault(key, set()).add(label)


def merge_labels(into, pairs):
    for synset, labels in pairs.items():
        into.setdefault(synset, set()).update(labels)


class Tally:
    """What a run read back: records per split prefix (`counts`) and the
    {synset: {labels}} of all of them (`pairs`), added shard by shard."""

    def __init__(self, prefixes=()):
        self.counts = {prefix: 0 for prefix in prefixes}
        self.pairs = {}

    def add(self, prefix, records, pairs):
        self.counts[prefix] = self.counts.get(prefix, 0) + records
        merge_labels(self.pairs, pairs)


def check_contract(pairs, custom, exact, where):
    """Raise UserError when the records' synset/label pairs break the contract."""
    problems = contract.check_label_map(pairs, custom=custom, exact=exact, where=where)
    if problems:
        raise UserError("%s (%d problem%s)" % (problems[0], len(problems),
                                               "" if len(problems) == 1 else "s"))


def local_records(path):
    """The payloads of the local TFRecord file `path`, both CRCs checked: framed here
    with the compiled CRC32C when it is found (no TensorFlow import), else by
    TensorFlow's C++ reader, else by the pure-Python one; tfrecord.CorruptRecord on
    bad framing or CRC."""
    if crc32c.compiled() is not None:
        yield from tfrecord.read_records(path)
        return
    try:
        tf = tfimport.tensorflow()
    except ImportError:
        yield from tfrecord.read_records(path)
        return
    if os.path.getsize(path) == 0:
        return
    try:
        yield from tf.compat.v1.io.tf_record_iterator(path)
    except tf.errors.OpError as err:
        raise tfrecord.CorruptRecord(str(err).strip().splitlines()[0])
