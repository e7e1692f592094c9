"""The image bytes of a run of planned images, in order, read with the next reads
already queued: reads from a bucket are kept in flight on threads
(remote.read_ahead); local reads are hinted to the disk READ_AHEAD images ahead
(containers.Reader.prefetch).  Used by the writer and by ./verify.sh --source."""

from ilsvrc.errors import UserError
from ilsvrc.sources import remote

# While a worker prepares one batch of a shard's images, the reads of the next batch
# are already queued at the disk.  The shuffled training order makes these reads
# random over the whole tar; out of the page cache (26 GB release, 2 workers) 64 took
# 191 s end to end where 16 took 207-217 s (docs/performance.md).  64 images are
# ~7 MB of page cache per worker.
READ_AHEAD = 64


def read_items(items, reader):
    """Image bytes of `items` (things with container, offset, size and where) in
    order, through `reader` (a containers.Reader)."""
    def one(item):
        try:
            return reader.read(item.container, item.offset, item.size)
        except OSError as err:
            raise UserError("cannot read %s: %s" % (item.where, err.strerror or err))
    if any(isinstance(item.container, remote.ObjectSlices) for item in items):
        yield from remote.read_ahead(items, one)
        return
    for i, item in enumerate(items):
        if i % READ_AHEAD == 0:       # the next images' reads go to the disk now
            for ahead in items[i + (READ_AHEAD if i else 0):i + 2 * READ_AHEAD]:
                reader.prefetch(ahead.container, ahead.offset, ahead.size)
        yield one(item)
