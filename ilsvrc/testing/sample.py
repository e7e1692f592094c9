"""Write a miniature ILSVRC2012 release, for the demo, the tests and the benchmarks.

    python -m ilsvrc.testing.sample DIR [--classes N] [--per-class N] [--val N] [--seed S]

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
import gzip
import io
import os
import random
import sys
import tarfile

from ilsvrc import shipped

# Real special images, so the re-encoding path runs on the sample.

from ilsvrc.testing import jpegenc
CMYK_SAMPLES = ("n01739381_1309.JPEG", "n02077923_14822.JPEG", "n07583066_647.JPEG")
PNG_SAMPLE = "n02105855_2933.JPEG"
ALWAYS = ("n01440764", "n15075141")  # first and last synsets: label 1 and 1000


def _add_members(tar, members):
    """Add (name, bytes) members to an open tar with fixed metadata; a name ending in
    '/' is a directory entry."""
    for name, payload in members:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(payload), 1334000000, 0o644
        if name.endswith("/"):
            info.type, info.size, info.mode = tarfile.DIRTYPE, 0, 0o755
        tar.addfile(info, io.BytesIO(payload))


def _tar_bytes(members):
    """A tar (bytes) of (name, bytes) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add_members(tar, members)
    return buf.getvalue()


def _write_tar(path, members, compress=False):
    """Stream (name, bytes) members into a tar file at `path` (gzip: mtime 0)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw as f, \
            tarfile.open(fileobj=f, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add_members(tar, members)
    os.replace(tmp, path)


# Annotation cases, given to training images in sorted order (sorted synsets, then
# sorted names): (case, (width, height), filename tag or None for the image's own
# stem, [(object name, xmin, ymin, xmax, ymax)]).  "own" is the image's synset,
# "other" another synset of the 1000.
BOX_CASES = (
    ("normal", (500, 375), None, [("own", 50, 30, 250, 300)]),
    ("two", (500, 375), None, [("own", 0, 0, 100, 75), ("own", 250, 187, 500, 375)]),
    ("swapped", (500, 400), None, [("own", 400, 300, 100, 50)]),
    ("outside", (500, 400), None, [("own", -20, 10, 600, 420)]),
    ("degenerate", (500, 400), None, [("own", 100, 50, 100, 200),
                                      ("own", 10, 300, 20, 300),
                                      ("own", 600, 10, 700, 20)]),
    ("human", (400, 300), None, [("Scottish_deerhound", 40, 30, 200, 150)]),
    ("filename", (640, 480), "%s", [("own", 64, 48, 320, 240)]),
    ("object0", (400, 300), None, [("other", 40, 30, 200, 150), ("own", 0, 0, 400, 300)]),
    ("object1", (400, 300), None, [("own", 40, 30, 200, 150), ("other", 0, 0, 400, 300)]),
    ("rounding", (3, 3), None, [("own", 1, 1, 2, 2)]),
)
# An annotation in a directory that is not one of the 1000 synsets.
FOREIGN_BOX = "n00000000/n00000000_1.xml"


def annotation_xml(folder, filename, size, objects):
    """PASCAL-VOC style annotation text, as in ILSVRC2012_bbox_train_v2."""
    objs = "".join(
        "\t<object>\n\t\t<name>%s</name>\n\t\t<pose>Unspecified</pose>\n"
        "\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
        "\t\t\t<xmin>%d</xmin>\n\t\t\t<ymin>%d</ymin>\n\t\t\t<xmax>%d</xmax>\n"
        "\t\t\t<ymax>%d</ymax>\n\t\t</bndbox>\n\t</object>\n" % obj for obj in objects)
    return ("<annotation>\n\t<folder>%s</folder>\n\t<filename>%s</filename>\n"
            "\t<source>\n\t\t<database>ILSVRC_2012</database>\n\t</source>\n"
            "\t<size>\n\t\t<width>%d</width>\n\t\t<height>%d</height>\n"
            "\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n%s"
            "</annotation>\n" % (folder, filename, size[0], size[1], objs)).encode()


def write_boxes(out_dir, train):
    """ILSVRC2012_bbox_train_v2.tar.gz for {synset: [names]}; returns {image: case}."""
    images = [(s, n) for s in sorted(train) for n in sorted(train[s])]
    members, cases = {}, {}
    for (synset, name), (case, size, tag, objects) in zip(images, BOX_CASES):
        stem = name[:-len(".JPEG")]
        other = "n01443537" if synset != "n01443537" else "n01440764"
        objs = [({"own": synset, "other": other}.get(o[0], o[0]),) + o[1:] for o in objects]
        members[synset + "/" + stem + ".xml"] = annotation_xml(
            synset, stem if tag is None else tag, size, objs)
        cases[name] = case
    folder, stem = FOREIGN_BOX[:-len(".xml")].split("/")
    members[FOREIGN_BOX] = annotation_xml(folder, stem, (100, 100),
                                          [(folder, 10, 10, 50, 50)])
    cases[stem + ".JPEG"] = "foreign"
    entries = []
    for name in sorted(members):
        folder = name.split("/")[0] + "/"
        if not entries or not entries[-1][0].startswith(folder):
            entries.append((folder, b""))
        entries.append((name, members[name]))
    _write_tar(os.path.join(out_dir, "ILSVRC2012_bbox_train_v2.tar.gz"), entries,
               compress=True)
    return cases


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
    rest = [s for s in shipped.read_lines(shipped.SYNSETS_FILE) if s not in special]
    if count <= len(special):
        return special[:count]
    return sorted(special + rng.sample(rest, count - len(special)))


def generate(out_dir, classes=6, per_class=5, val=12, seed=1, min_width=40,
             max_width=96, min_height=32, max_height=80, ac_terms=2, bbox=False):
    """Write the sample into out_dir; return {"train": {synset: [names]}, "val": [synsets]}.

    With bbox=True also the annotation archive; the manifest then has "bbox":
    {image name: case of BOX_CASES, or "foreign" for FOREIGN_BOX}."""
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
    if bbox:
        manifest["bbox"] = write_boxes(out_dir, manifest["train"])
    return manifest


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m ilsvrc.testing.sample",
                                description="Write a miniature ILSVRC2012 release.")
    p.add_argument("out_dir")
    p.add_argument("--classes", type=int, default=6, help="training classes (default 6)")
    p.add_argument("--per-class", type=int, default=5, help="images per class (default 5)")
    p.add_argument("--val", type=int, default=12, help="validation images (default 12)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bbox", action="store_true", help="also write the bounding box "
                   "archive ILSVRC2012_bbox_train_v2.tar.gz")
    a = p.parse_args(argv)
    if a.classes < 1 or a.per_class < 1 or a.val < 1:
        p.error("--classes, --per-class and --val must be at least 1")
    m = generate(a.out_dir, a.classes, a.per_class, a.val, a.seed, bbox=a.bbox)
    n = sum(len(v) for v in m["train"].values())
    sys.stderr.write("wrote a sample ILSVRC2012 release to %s: %d classes, %d training "
                     "and %d validation images\n" % (a.out_dir, len(m["train"]), n, a.val))
    return 0


if __name__ == "__main__":
    sys.exit(main())
