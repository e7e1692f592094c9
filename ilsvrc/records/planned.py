"""The record of one planned image: its bytes prepared (the special images re-encoded,
the image checked), its features (the seven both formats share plus the format's
own) and the Example payload.  The one definition the writer and `./verify.sh
--source` share, so verify compares a shard with exactly what a conversion of the
current source writes."""

from ilsvrc.records import features, image


def record(item, data, check="header"):
    """(features, payload) of planned image `item` (a plan.PlannedImage) whose
    source bytes are `data`; UserError naming item.where for a bad image."""
    encoded, height, width = image.prepare(data, item.relpath, check, item.where)
    feats = features.common_features(encoded, height, width,
                                     item.relpath.rsplit("/", 1)[-1])
    feats.update(item.features)
    return feats, features.encode(feats)
