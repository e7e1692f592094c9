"""Write the Hugging Face layouts of a miniature release (ilsvrc.testing.sample),
for the tests and the benchmarks:

    python -m ilsvrc.testing.hfsample RELEASE_DIR OUT_DIR [--layout parquet|hf-tar]

The same images as RELEASE_DIR's tars, laid out as `ILSVRC/imagenet-1k` has them:
names with `_<wnid>` before `.JPEG`, the 0-based label in sorted-synset order, rows
shuffled across the files of a split (parquet: small row groups), a few unlabelled
test images, and classes.py.  Validation synsets are taken from RELEASE_DIR's
synset_labels.txt.  Output depends only on the arguments.
"""

import argparse
import io
import os
import random
import sys
import tarfile

from ilsvrc import shipped
from ilsvrc.testing import sample


def release_rows(release_dir):
    """{split: [(hf name, label, bytes)]} of the release tars in release_dir."""
    classes = sorted(shipped.read_lines(shipped.SYNSETS_FILE))
    index = {s: i for i, s in enumerate(classes)}
    out = {"train": [], "validation": []}
    with tarfile.open(os.path.join(release_dir, "ILSVRC2012_img_train.tar")) as outer:
        for inner_info in outer:
            synset = inner_info.name[:-len(".tar")]
            inner_bytes = outer.extractfile(inner_info).read()
            with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
                for info in inner:
                    data = inner.extractfile(info).read()
                    name = "%s_%s.JPEG" % (info.name[:-len(".JPEG")], synset)
                    out["train"].append((name, index[synset], data))
    with open(os.path.join(release_dir, "synset_labels.txt")) as f:
        lines = f.read().split()
    with tarfile.open(os.path.join(release_dir, "ILSVRC2012_img_val.tar")) as val:
        for info in val:
            k = int(info.name[len("ILSVRC2012_val_"):-len(".JPEG")])
            synset = lines[k - 1]
            name = "%s_%s.JPEG" % (info.name[:-len(".JPEG")], synset)
            out["validation"].append((name, index[synset], val.extractfile(info).read()))
    return out


def _test_rows(rng, count):
    return [("ILSVRC2012_test_%08d.JPEG" % k, -1,
             sample.make_image(rng, "rgb", 40, 32)) for k in range(1, count + 1)]


def write(release_dir, out_dir, layout="parquet", files=None, seed=7, group_rows=4,
          tests=3):
    """Write the layout into out_dir/data (and out_dir/classes.py)."""
    rng = random.Random(seed)
    rows = release_rows(release_dir)
    rows["test"] = _test_rows(rng, tests)
    files = files or {"train": 3, "validation": 2, "test": 1}
    data = os.path.join(out_dir, "data")
    os.makedirs(data, exist_ok=True)
    for split, split_rows in rows.items():
        split_rows = list(split_rows)
        rng.shuffle(split_rows)
        if layout == "parquet":
            n = files[split]
            for k in range(n):
                write_parquet(os.path.join(data, "%s-%05d-of-%05d.parquet" % (split, k, n)),
                              split_rows[k::n], group_rows)
        else:
            names = {"train": ["train_images_%d.tar.gz" % i for i in range(5)],
                     "validation": ["val_images.tar.gz"],
                     "test": ["test_images.tar.gz"]}[split]
            for k, name in enumerate(names):
                write_tgz(os.path.join(data, name), split_rows[k::len(names)])
    with open(os.path.join(out_dir, "classes.py"), "w") as f:
        f.write("IMAGENET2012_CLASSES = {%s}\n" % ", ".join(
            "%r: %r" % (s, "class %d" % i) for i, s in
            enumerate(sorted(shipped.read_lines(shipped.SYNSETS_FILE)))))


def write_parquet(path, rows, group_rows=4):
    """A parquet file of (image: struct<bytes, path>, label: int64) rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()),
                                              ("path", pa.string())])),
                        ("label", pa.int64())])
    table = pa.table({"image": [{"bytes": d, "path": n} for n, _, d in rows],
                      "label": [lab for _, lab, _ in rows]}, schema=schema)
    pq.write_table(table, path, row_group_size=group_rows)


def write_tgz(path, rows):
    """A tar.gz of flat members (name, bytes)."""
    sample._write_tar(path, [(n, d) for n, _, d in rows], compress=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m ilsvrc.testing.hfsample",
                                description="Write the Hugging Face layout of a "
                                "miniature release.")
    p.add_argument("release_dir")
    p.add_argument("out_dir")
    p.add_argument("--layout", choices=("parquet", "hf-tar"), default="parquet")
    a = p.parse_args(argv)
    write(a.release_dir, a.out_dir, a.layout)
    sys.stderr.write("wrote the %s layout of %s to %s\n" % (a.layout, a.release_dir,
                                                             a.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
