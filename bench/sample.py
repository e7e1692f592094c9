"""Benchmark inputs: a release-shaped sample of photo-sized JPEGs, generated fast.

A few dozen distinct 500x375 pictures (smooth random colour fields plus fine noise,
encoded by TensorFlow at quality 90: about 110 KB each, like an average ILSVRC2012
training image) are encoded once and their bytes reused under many member names.
The tars are shaped like the release (outer tar of <synset>.tar, flat validation
tar of ILSVRC2012_val_%08d.JPEG, synset_labels.txt) and include the real special
cases (CMYK and PNG training images, a CMYK validation image) from ilsvrc.testing.sample.

A finished sample is cached: its directory holds a `done` marker with the parameters.
"""

import io
import json
import os
import random
import shutil
import tarfile

from ilsvrc.testing import sample

MTIME = 1334000000


def photo_jpegs(count, seed=0, width=500, height=375, quality=90, fine=18.0):
    """`count` distinct photo-like JPEGs (bytes), about 110 KB each at the defaults."""
    from ilsvrc.tfimport import tensorflow
    tf = tensorflow()
    out = []
    for i in range(count):
        g = tf.random.Generator.from_seed(seed * 1000 + i)
        coarse = g.uniform((24, 32, 3), 0, 255)
        base = tf.image.resize(coarse[None], (height, width), method="bicubic")[0]
        mid = tf.image.resize(g.uniform((height // 4, width // 4, 3), -60, 60)[None],
                              (height, width), method="bilinear")[0]
        noise = g.normal((height, width, 3), 0, fine)
        pixels = tf.cast(tf.clip_by_value(base + mid + noise, 0, 255), tf.uint8)
        out.append(tf.io.encode_jpeg(pixels, quality=quality).numpy())
    return out


def tiny_jpegs(count, seed=0):
    """`count` distinct small JPEGs (about 1 KB) from the pure-Python encoder."""
    rng = random.Random(seed)
    return [sample.make_image(rng, "gray" if i % 4 == 3 else "rgb",
                              rng.randint(40, 96), rng.randint(32, 80)) for i in range(count)]


def _add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(payload), MTIME, 0o644
    tar.addfile(info, io.BytesIO(payload))


def _inner_tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload in members:
            _add(tar, name, payload)
    return buf.getvalue()


def build(out_dir, classes, per_class, val, kind="photo", distinct=48, seed=1):
    """Write (or reuse) a sample release in out_dir; return its parameters."""
    params = {"classes": classes, "per_class": per_class, "val": val, "kind": kind,
              "distinct": distinct, "seed": seed, "version": 1}
    marker = os.path.join(out_dir, "done")
    try:
        with open(marker) as f:
            if json.load(f) == params:
                return params
    except (OSError, ValueError):
        pass
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    rng = random.Random(seed)
    pool = photo_jpegs(distinct, seed) if kind == "photo" else tiny_jpegs(distinct, seed)
    specials = {}
    for name in sample.CMYK_SAMPLES:
        specials[name] = sample.make_image(rng, "cmyk", 64, 48)
    specials[sample.PNG_SAMPLE] = sample.make_image(rng, "png", 64, 48)
    special_synsets = {n.split("_")[0]: n for n in specials}
    synsets = sample.pick_synsets(rng, classes)
    labels = []
    with tarfile.open(os.path.join(out_dir, "ILSVRC2012_img_train.tar.tmp"), "w",
                      format=tarfile.GNU_FORMAT) as outer:
        for synset in synsets:
            ids = rng.sample(range(1, 100000), per_class)
            members = [("%s_%d.JPEG" % (synset, i), rng.choice(pool)) for i in ids]
            if synset in special_synsets:
                name = special_synsets[synset]
                members[0] = (name, specials[name])
            _add(outer, synset + ".tar", _inner_tar(members))
    os.replace(os.path.join(out_dir, "ILSVRC2012_img_train.tar.tmp"),
               os.path.join(out_dir, "ILSVRC2012_img_train.tar"))
    with tarfile.open(os.path.join(out_dir, "ILSVRC2012_img_val.tar.tmp"), "w",
                      format=tarfile.GNU_FORMAT) as vt:
        for k in range(1, val + 1):
            labels.append(rng.choice(synsets))
            payload = specials[sample.CMYK_SAMPLES[0]] if k == 3 else rng.choice(pool)
            _add(vt, "ILSVRC2012_val_%08d.JPEG" % k, payload)
    os.replace(os.path.join(out_dir, "ILSVRC2012_img_val.tar.tmp"),
               os.path.join(out_dir, "ILSVRC2012_img_val.tar"))
    with open(os.path.join(out_dir, "synset_labels.txt"), "w") as f:
        f.write("".join(s + "\n" for s in labels))
    with open(marker, "w") as f:
        json.dump(params, f)
    return params


def release_bytes(out_dir):
    return sum(os.path.getsize(os.path.join(out_dir, n))
               for n in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"))


def add_shape_options(parser, classes, per_class, val):
    """--classes, --per-class and --val: the shape of the sample a benchmark builds."""
    parser.add_argument("--classes", type=int, default=classes, metavar="C",
                        help="training classes: inner tars (default %d)"
                        % classes)
    parser.add_argument("--per-class", type=int, default=per_class, metavar="P",
                        help="training images per class (default %d)" % per_class)
    parser.add_argument("--val", type=int, default=val, metavar="V",
                        help="validation images of the sample (default %d)" % val)
