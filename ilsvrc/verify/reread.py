"""Re-reading finished shards: the verify job, its worker (framing and CRC32C of every
record, the record rules, the shard against its plan) and the one driver that runs
them over many shards.

For each shard: framing and CRC32C of every record (records.checks.local_records for
a local file, the bucket reader for a gs:// object), that each record parses as an
Example with exactly the format's feature keys and kinds and a label in range, and --
when the plan is known -- that the shard holds exactly the planned images, in order,
with their labels.  Together with a plan that covers every source image once, that
proves every input is in the output exactly once with its label.  Across all shards
the synset/label pairs must follow the ILSVRC2012 contract (checks.check_contract),
so a plan built from bad inputs cannot make bad labels pass.
"""

from typing import NamedTuple, Optional

from ilsvrc import storage
from ilsvrc.errors import UserError
from ilsvrc.records import checks, features, planned, tfrecord
from ilsvrc.sources import containers, reading, remote


PLAN_FIX = ("The shard was written from another source, label file or options: verify "
            "it with the --source (and --labels) it was converted from, or delete it and "
            "rerun the conversion to rewrite it.")
RECORD_FIX = ("It is damaged, or a shard of another format: delete it and rerun the "
              "conversion to rewrite it (./verify.sh: check the FORMAT given).")


class VerifyJob(NamedTuple):
    """One shard to re-read (pickled to a worker)."""
    prefix: str                       # the split's file prefix, for the tally
    path: str
    schema: dict                      # {feature key: kind}
    label_range: tuple                # checks.label_range
    expected: Optional[list] = None   # [(image/filename, label)] planned, or None
    in_bucket: bool = False           # a gs:// object, not a local file
    items: Optional[list] = None      # the planned images: each record is compared,
                                      # byte for byte, with the record the source's
                                      # bytes give now (records.planned)


class ShardResult(NamedTuple):
    """What re-reading one shard found: records and bytes read, the problem (None
    when it checks out) and {synset: {labels}} of its records."""
    prefix: str
    records: int
    bytes: int
    problem: Optional[str]
    pairs: dict


def bucket_records(path, block=16 << 20):
    """The payloads of the TFRecord object `path`, both CRCs checked."""
    info = storage.store_for(path).stat(path)
    if info is None:
        raise UserError("%s is missing. Rerun the conversion to write it." % path)
    yield from tfrecord.read_stream(remote.open_stream(path, 0, info.size, buffer_size=block))


def expected(split, k):
    """What shard k of `split` must hold: [(image/filename, image/class/label)]."""
    return [(item.relpath.rsplit("/", 1)[-1], item.features["image/class/label"][1][0])
            for item in split.shard_items(k)]


def plan_jobs(shards, schema, label_range, in_bucket=False, source_bytes=False):
    """VerifyJobs of the planned shards [(split, k)], each against its plan (with
    source_bytes, every record against the record the source gives now)."""
    return (VerifyJob(split.prefix, split.path(k), schema, label_range,
                      expected(split, k), in_bucket,
                      split.shard_items(k) if source_bytes else None)
            for split, k in shards)


BOXES = "image/object/"


class _Source:
    """The planned images of a shard read from the source, compared with what the
    shard holds (VerifyJob.items)."""

    def __init__(self, items):
        self.items, self.reader = items, containers.Reader()
        self.data = reading.read_items(items, self.reader)

    def differences(self, payload, n):
        if n >= len(self.items):
            return []                      # _against_plan reports the extra record
        item = self.items[n]
        feats, want = planned.record(item, next(self.data))
        if bytes(payload) == want:
            return []
        got = features.decode(payload)
        if got.get("image/encoded") != feats["image/encoded"]:
            return ["its image bytes differ from %s (the source changed since the shard "
                    "was written, or the shard was altered). Delete the shard and rerun "
                    "the conversion" % item.where]
        # boxes come from the box archive, not from the image: a re-plan from the
        # source alone (./verify.sh --source for slim) has none to compare
        differ = sorted(k for k in feats if not k.startswith(BOXES)
                        and got.get(k) != feats[k])
        if differ:
            return ["its %s differ from the record %s gives. Delete the shard and rerun "
                    "the conversion" % (", ".join(differ), item.where)]
        return []

    def close(self):
        self.data.close()
        self.reader.close()


def _against_plan(feats, want, n):
    if want is None:
        return []
    if n >= len(want):
        return ["more records than the %d planned" % len(want)]
    name = bytes(feats["image/filename"][1][0])
    got = (name.decode("utf-8", "replace"), feats["image/class/label"][1][0])
    if got != tuple(want[n]):
        return ["holds %s label %d, planned %s label %d" % (got + tuple(want[n]))]
    return []


def read_shard(job):
    """Re-read one shard: (records, bytes, {synset: {labels}}); UserError naming the
    shard and record on the first problem."""
    n = nbytes = 0
    pairs = {}
    payloads = bucket_records(job.path) if job.in_bucket else \
        checks.local_records(job.path)
    source = _Source(job.items) if job.items is not None else None
    try:
        for payload in payloads:
            where = "%s record %d" % (job.path, n)
            try:
                feats = features.decode(payload, copy=False)
            except features.DecodeError as err:
                raise UserError("%s: not an Example (%s). %s" % (where, err, RECORD_FIX))
            problems = checks.check_record(feats, job.schema, job.label_range)
            unplanned = _against_plan(feats, job.expected, n)
            if problems or unplanned:
                raise UserError("%s: %s. %s" % (where, "; ".join(problems + unplanned),
                                                RECORD_FIX if problems else PLAN_FIX))
            if source is not None:
                differs = source.differences(payload, n)
                if differs:
                    raise UserError("%s: %s" % (where, "; ".join(differs)))
            checks.note_label(pairs, feats)
            n += 1
            nbytes += len(payload) + 16
    except tfrecord.CorruptRecord as err:
        raise UserError("%s: corrupt after %d good records (%s). Delete it and rerun "
                        "the conversion to rewrite it." % (job.path, n, err))
    except FileNotFoundError:
        raise UserError("%s is missing. Rerun the conversion to write it." % job.path)
    finally:
        if source is not None:
            source.close()
    if job.expected is not None and n != len(job.expected):
        raise UserError("%s holds %d records, planned %d. %s"
                        % (job.path, n, len(job.expected), PLAN_FIX))
    return n, nbytes, pairs


def verify_shard(job):
    """Worker: re-read one shard (a VerifyJob); a ShardResult, never an exception
    for what the shard holds."""
    try:
        n, nbytes, pairs = read_shard(job)
    except UserError as err:
        return ShardResult(job.prefix, 0, 0, str(err), {})
    except OSError as err:
        return ShardResult(job.prefix, 0, 0, "%s: cannot read: %s"
                           % (job.path, err.strerror or err), {})
    return ShardResult(job.prefix, n, nbytes, None, pairs)


def verify_shards(jobs, runner, tally, progress=None, keep_going=False):
    """Re-read every shard of `jobs` (VerifyJobs) on `runner`, adding each to `tally`
    (records.checks.Tally) and to `progress` (one shard and its bytes at a time).
    The first problem raises UserError, or, with keep_going, every problem is
    returned in a list."""
    problems = []
    for _, result in runner.run(verify_shard, jobs):
        if result.problem:
            if not keep_going:
                raise UserError(result.problem)
            problems.append(result.problem)
        tally.add(result.prefix, result.records, result.pairs)
        if progress is not None:
            progress.update(1, result.bytes)
    if progress is not None:
        progress.update(0, 0, force=True)
    return problems
