"""The record of one planned image: its bytes prepared (the special images re-encoded,
the image checked), its features (the seven both formats share plus the format's
own) and the Example payload.  The one definition the writer and `./verify.sh
--source` share, so verify compares a shard with exactly what a conversion of the
current source writes.

The writer encodes with records.fastcodec (`record_parts`: the payload as pieces, the
image bytes not copied); verify keeps the reference encoder (`record`), so the two
stay independent.  Both give the same bytes (tests/test_fastpath.py)."""

from ilsvrc.records import fastcodec, features, image


def _features(item, data, check):
    encoded, height, width = image.prepare(data, item.relpath, check, item.where)
    feats = features.common_features(encoded, height, width,
                                     item.relpath.rsplit("/", 1)[-1])
    feats.update(item.features)
    return feats


def record(item, data, check="header"):
    """(features, payload) of planned image `item` (a plan.PlannedImage) whose
    source bytes are `data`; UserError naming item.where for a bad image."""
    feats = _features(item, data, check)
    return feats, features.encode(feats)


def record_parts(item, data, check="header"):
    """record() with the payload as the list of pieces fastcodec.encode_parts gives
    (b"".join of them is record()'s payload)."""
    feats = _features(item, data, check)
    return feats, fastcodec.encode_parts(feats)
