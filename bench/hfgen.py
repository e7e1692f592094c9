"""The Hugging Face parquet layout (`ILSVRC/imagenet-1k`) of a release-shaped sample
(bench/sample.py), at any size, with bounded memory.

    write_copy(release_dir, hf_dir, file_mb=256, seed=0)

hf_dir/data/{train,validation}-NNNNN-of-NNNNN.parquet hold every image of the
release tars once, rows (image: struct<bytes, path>, label: int64) shuffled (seeded)
across the files of a split, ~file_mb MB per file, row groups of 100 rows, named as
the copy names them (`n01440764_10026_n01440764.JPEG`,
`ILSVRC2012_val_00000001_n01751748.JPEG`), label = the synset's index in the sorted
1000.  Validation synsets come from release_dir/synset_labels.txt, which is copied to
hf_dir/ so that a conversion of either uses the same label file.  Files are written
one at a time, a row group at a time (~11 MB in memory), their images read from the
tars at the offsets the project's own tar index gives.  The sample reuses 48
distinct JPEGs, so dictionary encoding is off (it would store a repeated image once,
which no real copy can); compression is pyarrow's default (snappy).
"""

import json
import os
import random
import shutil

from ilsvrc import contract, pool
from ilsvrc.sources import tarindex

GROUP_ROWS = 100
VERSION = 1


def rows_of(release):
    """{split: [(hf name, label, offset, size)]} of the release tars, and the tars."""
    classes = {s: i for i, s in enumerate(sorted(contract.official_synsets()))}
    train_tar = os.path.join(release, tarindex.TRAIN_TAR)
    val_tar = os.path.join(release, tarindex.VAL_TAR)
    with pool.Pool(0) as runner:
        train = tarindex.index_train_tar(train_tar, runner)
    val = tarindex.index_flat_tar(val_tar)
    with open(os.path.join(release, "synset_labels.txt")) as f:
        labels = f.read().split()
    rows = {"train": [], "validation": []}
    for i, name in enumerate(train.names):
        synset = train.group_of(i)
        rows["train"].append(("%s_%s.JPEG" % (name[:-len(".JPEG")], synset),
                              classes[synset], train.offset[i], train.size[i]))
    for i, name in enumerate(val.names):
        synset = labels[int(name[len("ILSVRC2012_val_"):-len(".JPEG")]) - 1]
        rows["validation"].append(("%s_%s.JPEG" % (name[:-len(".JPEG")], synset),
                                   classes[synset], val.offset[i], val.size[i]))
    return rows, {"train": train_tar, "validation": val_tar}


def split_files(rows, file_bytes, rng):
    """The rows shuffled, cut into files of about file_bytes each: [[row]]."""
    rows = list(rows)
    rng.shuffle(rows)
    n = max(1, int(round(sum(r[3] for r in rows) / file_bytes)))
    return [rows[k * len(rows) // n:(k + 1) * len(rows) // n] for k in range(n)]


def write_file(path, rows, tar):
    """One parquet file of `rows`, read from `tar` by offset, a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()),
                                              ("path", pa.string())])),
                        ("label", pa.int64())])
    fd = os.open(tar, os.O_RDONLY)
    try:
        with pq.ParquetWriter(path + ".tmp", schema, use_dictionary=False) as w:
            for g in range(0, len(rows), GROUP_ROWS):
                group = rows[g:g + GROUP_ROWS]
                images = [{"bytes": os.pread(fd, size, off), "path": name}
                          for name, _, off, size in group]
                w.write_table(pa.table({"image": images,
                                        "label": [lab for _, lab, _, _ in group]},
                                       schema=schema), row_group_size=GROUP_ROWS)
    finally:
        os.close(fd)
    os.replace(path + ".tmp", path)


def write_copy(release, hf_dir, file_mb=256, seed=0):
    """Write (or reuse, while hf_dir/done matches) the parquet copy of `release`;
    return {split: number of files}."""
    with open(os.path.join(release, "done")) as f:
        params = {"release": json.load(f), "file_mb": file_mb, "seed": seed,
                  "group_rows": GROUP_ROWS, "version": VERSION}
    marker = os.path.join(hf_dir, "done")
    try:
        with open(marker) as f:
            old = json.load(f)
        if old["params"] == params:
            return old["files"]
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(hf_dir, ignore_errors=True)
    os.makedirs(os.path.join(hf_dir, "data"))
    rows, tars = rows_of(release)
    rng, counts = random.Random(seed), {}
    for split in ("train", "validation"):
        files = split_files(rows[split], file_mb * 1e6, rng)
        counts[split] = len(files)
        for k, part in enumerate(files):
            name = "%s-%05d-of-%05d.parquet" % (split, k, len(files))
            write_file(os.path.join(hf_dir, "data", name), part, tars[split])
    shutil.copy(os.path.join(release, "synset_labels.txt"), hf_dir)
    with open(marker, "w") as f:
        json.dump({"params": params, "files": counts}, f)
    return counts
