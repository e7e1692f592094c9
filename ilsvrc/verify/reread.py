"""The verify stage: re-read shards and check them record by record.

For each shard: framing and CRC32C of every record (TensorFlow's reader when it is
installed, the pure-Python reader otherwise), that each record parses as an Example
with exactly the format's feature keys and kinds, label range, and -- when the plan
is known -- that the shard holds exactly the planned images, in order, with their
labels.  Together with a plan that covers every source image once, that proves every
input is in the output exactly once with its label.  Across all shards the
synset/label pairs must follow the ILSVRC2012 contract (contract.check_label_map),
so a plan built from bad inputs cannot make bad labels pass.
"""

import os

from ilsvrc import contract, storage
from ilsvrc.records import features, tfrecord
from ilsvrc.sources import remote
from ilsvrc.errors import UserError



def bucket_records(path, block=16 << 20):
    """The payloads of the TFRecord object `path`, both CRCs checked."""
    info = storage.store_for(path).stat(path)
    if info is None:
        raise UserError("%s is missing. Rerun the conversion to write it." % path)
    yield from tfrecord.read_stream(remote.open_stream(path, 0, info.size, buffer_size=block))


def _records(path):
    if storage.is_remote(path):
        yield from bucket_records(path)
        return
    try:
        from ilsvrc.tfimport import tensorflow
        tf = tensorflow()
    except ImportError:
        yield from tfrecord.read_records(path)
        return
    if os.path.getsize(path) == 0:
        return
    try:
        # The C++ record reader: checks both CRCs, ~20 us to open (tf.data: ~25 ms).
        yield from tf.compat.v1.io.tf_record_iterator(path)
    except tf.errors.OpError as err:
        raise tfrecord.CorruptRecord(str(err).strip().splitlines()[0])


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
    synset = feats.get("image/class/synset", (None, [b""]))[1]
    label = feats["image/class/label"][1][0]
    key = bytes(synset[0]).decode("utf-8", "replace") if len(synset) == 1 else repr(synset)
    pairs.setdefault(key, set()).add(label)


def verify_shard_labels(job):
    """Worker: (path, schema, label_range, expected or None) -> (number of records,
    {synset: {labels}} of the shard's records, for the contract's
    one-synset-one-label check across shards and splits)."""
    path, schema, label_range, expected = job
    n = 0
    pairs = {}
    try:
        for payload in _records(path):
            where = "%s record %d" % (path, n)
            try:
                feats = features.decode(payload, copy=False)
            except features.DecodeError as err:
                raise UserError("%s: not an Example (%s)" % (where, err))
            problems = check_record(feats, schema, label_range)
            if expected is not None:
                if n >= len(expected):
                    problems.append("more records than the %d planned" % len(expected))
                else:
                    name = bytes(feats["image/filename"][1][0])
                    got = (name.decode("utf-8", "replace"),
                           feats["image/class/label"][1][0])
                    if got != tuple(expected[n]):
                        problems.append("holds %s label %d, planned %s label %d"
                                        % (got + tuple(expected[n])))
            if problems:
                raise UserError("%s: %s" % (where, "; ".join(problems)))
            note_label(pairs, feats)
            n += 1
    except tfrecord.CorruptRecord as err:
        raise UserError("%s: corrupt after %d good records (%s). Delete it and rerun "
                        "the conversion to rewrite it." % (path, n, err))
    except FileNotFoundError:
        raise UserError("%s is missing. Rerun the conversion to write it." % path)
    if expected is not None and n != len(expected):
        raise UserError("%s holds %d records, planned %d. Delete it and rerun the "
                        "conversion." % (path, n, len(expected)))
    return n, pairs


def merge_labels(into, pairs):
    for synset, labels in pairs.items():
        into.setdefault(synset, set()).update(labels)


def label_range(num_labels, custom):
    """Labels a verify accepts: 1..1000, or 1..N for a custom class set of N."""
    return (1, num_labels) if custom else (1, contract.NUM_CLASSES)


def check_contract(pairs, custom, exact, where):
    """Raise UserError when the records' synset/label pairs break the contract."""
    problems = contract.check_label_map(pairs, custom=custom, exact=exact, where=where)
    if problems:
        raise UserError("%s (%d problem%s)" % (problems[0], len(problems),
                                               "" if len(problems) == 1 else "s"))


def expected(split, k):
    """What shard k of `split` must hold: [(image/filename, image/class/label)]."""
    return [(item.relpath.rsplit("/", 1)[-1], item.features["image/class/label"][1][0])
            for item in split.shard_items(k)]


def _verify_job(job):
    return verify_shard_labels(job[1])


def verify_shards(shards, schema, label_range, runner, pairs=None):
    """Re-read the given shards [(split, k)] and check each against the plan; return
    {prefix: records} (only the prefixes of `shards`).  `pairs`: a dict that collects
    {synset: {labels}} of all records."""
    counts = {}
    jobs = ((split.prefix, (split.path(k), schema, label_range, expected(split, k)))
            for split, k in shards)
    for (prefix, _), (n, shard_pairs) in runner.run(_verify_job, jobs):
        counts[prefix] = counts.get(prefix, 0) + n
        if pairs is not None:
            merge_labels(pairs, shard_pairs)
    return counts
