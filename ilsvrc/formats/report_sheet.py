"""The report's contact sheet: about 24 records drawn at random (seeded, so the same
shards give the same sheet) from the written shards and read back from them, each
with its file name, label, synset and class text.  Bounded at any release size:
shards are drawn first, then records among those read (a few shards at most)."""

import hashlib
import random
from typing import NamedTuple, Optional

from ilsvrc import storage
from ilsvrc.records import features, tfrecord
from ilsvrc.verify import reread

SIZE, SEED = 24, 2012
SHARE = {"train": 2 / 3}          # of SIZE; the other split gets the rest
ENOUGH = 4                        # records seen per record drawn before we stop
MAX_SHARDS, MAX_BYTES = 64, 1 << 30   # per split


class Shard(NamedTuple):
    """One shard of a split: where it is, its size and its records (None: not known
    without a plan)."""
    prefix: str
    k: int
    path: str
    size: int
    records: Optional[int]


def _records(path):
    """The payloads of a shard (both CRCs checked), local or in a bucket."""
    if storage.is_remote(path):
        return reread.bucket_records(path)
    return tfrecord.read_records(path)


def _draw_split(shards, need, rng):
    """Draw `need` records of one split: its non-empty shards in a seeded order,
    read until ENOUGH x need records were seen (or MAX_SHARDS / MAX_BYTES), one
    reservoir sample over them.  ([(Shard, index, payload)], shards read, records
    seen, [problem])."""
    order = [s for s in sorted(shards, key=lambda s: s.k) if s.size > 0]
    rng.shuffle(order)
    picked, read, seen, spent, skipped = [], [], 0, 0, []
    for shard in order:
        if seen >= ENOUGH * need or len(read) >= MAX_SHARDS or spent >= MAX_BYTES:
            break
        try:
            for i, payload in enumerate(_records(shard.path)):
                seen += 1
                if len(picked) < need:
                    picked.append((shard, i, payload))
                else:
                    j = rng.randrange(seen)
                    if j < need:
                        picked[j] = (shard, i, payload)
        except Exception as err:   # a damaged shard is skipped (verify names it)
            skipped.append("%s: %s" % (shard.path, " ".join(str(err).split())))
        read.append(shard.path)
        spent += shard.size
    return picked, read, seen, skipped


def _entry(shard, index, payload, texts):
    """What the sheet shows of one record."""
    feats = features.decode(payload)

    def one(key, default=None):
        values = feats.get(key, (None, []))[1]
        return values[0] if len(values) == 1 else default

    def text(key):
        value = one(key)
        return None if value is None else bytes(value).decode("utf-8", "replace")

    synset = text("image/class/synset")
    image = bytes(one("image/encoded", b""))
    return {"split": shard.prefix, "shard": shard.path, "shard_index": shard.k,
            "record": index, "filename": text("image/filename"),
            "label": one("image/class/label"), "synset": synset,
            "text": texts.get(synset or "", ""),
            "record_text": text("image/class/text"),
            "width": one("image/width"), "height": one("image/height"),
            "bytes": len(image), "sha256": hashlib.sha256(image).hexdigest(),
            "mime": mime(image), "image": image}


def mime(data):
    """The browser's name for image bytes (records hold JPEG)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return "application/octet-stream"


def draw(shards, texts, size=SIZE, seed=SEED):
    """The sheet of {prefix: [Shard]}: {"images": [entry with its bytes], "read":
    [shard paths read], "seen": records read, "skipped": [problem], "seed"}."""
    prefixes = [p for p in ("train", "validation") if p in shards] + \
        sorted(p for p in shards if p not in ("train", "validation"))
    live = [p for p in prefixes if any(s.size > 0 for s in shards[p])]
    images, read, seen, skipped = [], [], 0, []
    for n, prefix in enumerate(live):
        rest = size - len(images)
        need = rest if n == len(live) - 1 else \
            max(1, round(size * SHARE.get(prefix, 1 / len(live))))
        rng = random.Random(seed * 1000 + n)
        picked, got, count, bad = _draw_split(shards[prefix], min(need, rest), rng)
        images += [_entry(shard, i, payload, texts) for shard, i, payload in picked]
        read, seen, skipped = read + got, seen + count, skipped + bad
    order = {p: n for n, p in enumerate(prefixes)}
    images.sort(key=lambda e: (order[e["split"]], e["label"] if isinstance(
        e["label"], int) else 0, e["filename"] or ""))
    return {"images": images, "read": read, "seen": seen, "skipped": skipped,
            "seed": seed}


def summary(sheet):
    """The sheet as report.json holds it: every entry without its image bytes (the
    file name, shard, record number and SHA-256 name them)."""
    return {"seed": sheet["seed"], "shards_read": sheet["read"],
            "records_read": sheet["seen"], "skipped": sheet["skipped"],
            "images": [{k: v for k, v in e.items() if k != "image"}
                       for e in sheet["images"]]}
