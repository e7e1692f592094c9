"""The sample generator writes a release shaped like the real one."""

import io
import re
import tarfile

from ilsvrc.records import jpeg
from ilsvrc.sources import tarindex
from ilsvrc.testing import sample


def test_sample_shape(sample_release):
    raw, manifest = sample_release
    with tarfile.open("%s/%s" % (raw, tarindex.TRAIN_TAR)) as outer:
        inner_names = outer.getnames()
        assert inner_names != sorted(inner_names)
        assert all(re.fullmatch(r"n\d{8}\.tar", n) for n in inner_names)
        kinds = {}
        for m in outer.getmembers():
            inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(m).read()))
            names = inner.getnames()
            for name in names:
                data = inner.extractfile(name).read()
                if data.startswith(b"\x89PNG"):
                    kinds[name] = "png"
                else:
                    kinds[name] = jpeg.header_info(data)[2]
    assert kinds[sample.PNG_SAMPLE] == "png"
    assert all(kinds[n] == 4 for n in sample.CMYK_SAMPLES)
    assert list(kinds.values()).count(1) >= 3
    ids = [int(n.split("_")[1].split(".")[0]) for n in kinds]
    assert any(len(str(i)) < 5 for i in ids)  # not zero-padded
    with tarfile.open("%s/%s" % (raw, tarindex.VAL_TAR)) as val:
        names = val.getnames()
        assert names != sorted(names) and len(names) == len(manifest["val"])
    with open("%s/synset_labels.txt" % raw) as f:
        assert f.read().split() == manifest["val"]


def test_sample_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    sample.generate(str(a), classes=3, per_class=2, val=2, seed=7)
    sample.generate(str(b), classes=3, per_class=2, val=2, seed=7)
    for name in (tarindex.TRAIN_TAR, tarindex.VAL_TAR, "synset_labels.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
