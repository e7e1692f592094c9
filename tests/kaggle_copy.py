"""Test helpers: the sample release laid out as the Kaggle copy (tree or zip), with the
LOC_* files Kaggle ships."""

import io
import os
import random
import tarfile
import zipfile

from ilsvrc import shipped
from ilsvrc.sources import tarindex

CLS = "ILSVRC/Data/CLS-LOC"
SYNSETS = shipped.read_lines(shipped.SYNSETS_FILE)


def release_files(raw):
    """(kaggle member name, bytes) for every image of the sample release in `raw`."""
    out = []
    with tarfile.open(os.path.join(raw, tarindex.TRAIN_TAR)) as outer:
        for m in outer.getmembers():
            syn = m.name[:-4]
            inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(m).read()))
            for im in inner.getmembers():
                out.append(("%s/train/%s/%s" % (CLS, syn, im.name),
                            inner.extractfile(im).read()))
    with tarfile.open(os.path.join(raw, tarindex.VAL_TAR)) as val:
        for m in val.getmembers():
            out.append(("%s/val/%s" % (CLS, m.name), val.extractfile(m).read()))
    return out


def solution_csv(val_synsets, numbers=None, seed=3):
    """LOC_val_solution.csv text: row for image k (1-based) labels it val_synsets[k-1],
    rows shuffled as in Kaggle's file."""
    numbers = range(1, len(val_synsets) + 1) if numbers is None else numbers
    rows = ["ILSVRC2012_val_%08d,%s 1 2 30 40 %s 5 6 70 80 " % (k, val_synsets[k - 1],
                                                               val_synsets[k - 1])
            for k in numbers]
    random.Random(seed).shuffle(rows)
    return "ImageId,PredictionString\n" + "\n".join(rows) + "\n"


def mapping_txt(synsets=SYNSETS):
    return "".join("%s class %d, words\n" % (s, i) for i, s in enumerate(synsets))


def loc_files(val_synsets, **kw):
    return {"LOC_synset_mapping.txt": mapping_txt(),
            "LOC_val_solution.csv": solution_csv(val_synsets, **kw)}


def write_tree(root, files):
    for name, payload in files:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(payload.encode() if isinstance(payload, str) else payload)
    return root


def write_zip(path, files, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, payload in files:
            z.writestr(name, payload)
    return path
