"""Write a miniature ILSVRC2012 release, for the demo, the tests and the benchmarks.

    python -m ilsvrc.sample DIR [--classes N] [--per-class N] [--val N] [--seed S]

DIR gets what a user downloads, shaped like the real thing:
  ILSVRC2012_img_train.tar   outer tar of <synset>.tar, each of <synset>_<id>.JPEG
  ILSVRC2012_img_val.tar     flat ILSVRC2012_val_%08d.JPEG
  synset_labels.txt          one synset per validation image, in number order
Member order is scrambled (neither tar is sorted), ids are not zero-padded, every
fourth image is grayscale, the CMYK-listed names hold real 4-component CMYK JPEGs,
the PNG-listed name holds a PNG, and one validation image is CMYK too (as
ILSVRC2012_val_00019877 is in the real set).  Output depends only on the arguments.
"""

import argparse
import io
import os
import random
import sys
import tarfile

from ilsvrc import data, jpegenc

# Real special images, so the re-encoding path runs on the sample.
CMYK_SAMPLES = ("n01739381_1309.JPEG", "n02077923_14822.JPEG", "n07583066_647.JPEG")
PNG_SAMPLE = "n02105855_2933.JPEG"
ALWAYS = ("n01440764", "n15075141")  # first and last synsets: label 1 and 1000


def _tar_bytes(members):
    """A tar (bytes) of (name, bytes) members, with fixed metadata."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(payload), 1334000000, 0o644
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _write_tar(path, members):
    """Stream (name, bytes) members into a tar file at `path`."""
    tmp = path + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(payload), 1334000000, 0o644
            tar.addfile(info, io.BytesIO(payload))
    os.replace(tmp, path)


def make_image(rng, kind, width, height, ac_terms=2):
    """JPEG (or PNG) bytes of a smooth random picture: kind rgb, gray, cmyk or png."""
    base = [rng.randint(40, 215) for _ in range(4)]
    slope = [rng.uniform(-3, 3) for _ in range(8)]

    def level(c, bx, by):
        v = base[c] + slope[2 * c] * bx + slope[2 * c + 1] * by
        return max(0, min(255, v))

    seed = rng.randrange(1 << 30)
    if kind == "png":
        return jpegenc.encode_png(width, height, lambda x, y: tuple(
            int(level(c, x // 8, y // 8)) for c in range(3)))
    components = {"rgb": 3, "gray": 1, "cmyk": 4}[kind]
    return jpegenc.encode(width, height, components, level, ac_terms, seed,
                          adobe=(kind == "cmyk"))


def _size(rng, args):
    return (rng.randint(args.min_width, args.max_width),
            rng.randint(args.min_height, args.max_height))


def pick_synsets(rng, count):
    special = sorted({n.split("_")[0] for n in CMYK_SAMPLES + (PNG_SAMPLE,)} | set(ALWAYS))
    rest = [s for s in data.read_lines(data.SYNSETS_FILE) if s not in special]
    if count <= len(special):
        return special[:count]
    return sorted(special + rng.sample(rest, count - len(special)))


def generate(out_dir, classes=6, per_class=5, val=12, seed=1, min_width=40,
             max_width=96, min_height=32, max_height=80, ac_terms=2):
    """Write the sample into out_dir; return {"train": {synset: [names]}, "val": [synsets]}."""
    args = argparse.Namespace(min_width=min_width, max_width=max_width,
                              min_height=min_height, max_height=max_height)
    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)
    synsets = pick_synsets(rng, classes)
    specials = {n.split("_")[0]: n for n in CMYK_SAMPLES + (PNG_SAMPLE,)}
    manifest = {"train": {}, "val": []}
    counter = 0

    def inner_tars():
        nonlocal counter
        for synset in scrambled(synsets):
            ids = rng.sample(range(1, 30000), per_class)
            names = ["%s_%d.JPEG" % (synset, i) for i in ids]
            if synset in specials:
                names[0] = specials[synset]
            members = []
            for name in names:
                counter += 1
                if name == PNG_SAMPLE:
                    kind = "png"
                elif name in CMYK_SAMPLES:
                    kind = "cmyk"
                else:
                    kind = "gray" if counter % 4 == 0 else "rgb"
                members.append((name, make_image(rng, kind, *_size(rng, args), ac_terms)))
            manifest["train"][synset] = sorted(names)
            yield synset + ".tar", _tar_bytes(scrambled(members))

    def scrambled(items):
        items = list(items)
        rng.shuffle(items)
        return items

    _write_tar(os.path.join(out_dir, "ILSVRC2012_img_train.tar"), inner_tars())

    val_members = []
    for k in range(1, val + 1):
        manifest["val"].append(rng.choice(synsets))
        kind = "cmyk" if k == 3 else ("gray" if k % 5 == 0 else "rgb")
        val_members.append(("ILSVRC2012_val_%08d.JPEG" % k,
                            make_image(rng, kind, *_size(rng, args), ac_terms)))
    _write_tar(os.path.join(out_dir, "ILSVRC2012_img_val.tar"), scrambled(val_members))
    with open(os.path.join(out_dir, "synset_labels.txt"), "w") as f:
        f.write("".join(s + "\n" for s in manifest["val"]))
    return manifest


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m ilsvrc.sample",
                                description="Write a miniature ILSVRC2012 release.")
    p.add_argument("out_dir")
    p.add_argument("--classes", type=int, default=6, help="training classes (default 6)")
    p.add_argument("--per-class", type=int, default=5, help="images per class (default 5)")
    p.add_argument("--val", type=int, default=12, help="validation images (default 12)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    if a.classes < 1 or a.per_class < 1 or a.val < 1:
        p.error("--classes, --per-class and --val must be at least 1")
    m = generate(a.out_dir, a.classes, a.per_class, a.val, a.seed)
    n = sum(len(v) for v in m["train"].values())
    sys.stderr.write("wrote a sample ILSVRC2012 release to %s: %d classes, %d training "
                     "and %d validation images\n" % (a.out_dir, len(m["train"]), n, a.val))
    return 0


if __name__ == "__main__":
    sys.exit(main())
