"""Shared pieces of the bad-input corpus (tests/test_contract_*.py): running a front
end, asserting its one-line error, editing the generated release, and reading the
records back with TensorFlow's own reader (independent of ilsvrc.verify.reread)."""

import glob
import io
import os
import tarfile

from conftest import REPO, run_cmd

BUILD = os.path.join(REPO, "build.sh")
VERIFY = os.path.join(REPO, "verify.sh")
SLIM = os.path.join(REPO, "slim", "download_and_convert_imagenet.sh")
TRAIN_TAR, VAL_TAR = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"


def one_line_error(result, prog, *words):
    """Non-zero exit, no traceback, the last stderr line `PROG: error: ...` holding
    every word; returns that line."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "no message at all"
    last = lines[-1]
    assert last.startswith("%s: error: " % prog), result.stderr
    for word in words:
        assert word in last, (word, last)
    return last


def build(src, out, *extra, **kw):
    return run_cmd([BUILD, src, "-o", out, "-j", "0"] + list(extra), **kw)


def shard_files(out):
    """Every file with a final shard name under out (any depth)."""
    return sorted(p for p in glob.glob(os.path.join(out, "**", "*-of-*"), recursive=True)
                  if not os.path.basename(p).startswith("."))


def read_records(paths, tf):
    """[(filename, label, synset)] of every record, parsed by tf.data."""
    spec = {"image/filename": tf.io.FixedLenFeature([], tf.string),
            "image/class/label": tf.io.FixedLenFeature([], tf.int64),
            "image/class/synset": tf.io.FixedLenFeature([], tf.string)}
    out = []
    paths = [p for p in paths if os.path.getsize(p)]
    if not paths:
        return out
    for raw in tf.data.TFRecordDataset(paths):
        ex = tf.io.parse_single_example(raw, spec)
        out.append((ex["image/filename"].numpy().decode(),
                    int(ex["image/class/label"].numpy()),
                    ex["image/class/synset"].numpy().decode()))
    return out


def official_label(synset):
    from ilsvrc import shipped as data
    with open(data.SYNSETS_FILE) as f:
        return [line.strip() for line in f].index(synset) + 1


# --------------------------------------------------------------------------- tars

def tar_bytes(members, fmt=tarfile.GNU_FORMAT):
    """A tar (bytes) of (name, bytes) members; name ending in '/' = directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1334000000, 0o644
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def members_of(source):
    """[(name, bytes)] of the regular members of a tar path or tar bytes."""
    f = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with f, tarfile.open(fileobj=f, mode="r:") as tar:
        return [(i.name, tar.extractfile(i).read()) for i in tar if i.isreg()]


def rewrite_tar(path, edit):
    with open(path + ".tmp", "wb") as f:
        f.write(tar_bytes(edit(members_of(path))))
    os.replace(path + ".tmp", path)


def edit_inner(src, synset, edit):
    """Rewrite <synset>.tar inside the training tar with edit(members)."""
    def outer(members):
        return [(n, tar_bytes(edit(members_of(p))) if n == synset + ".tar" else p)
                for n, p in members]
    rewrite_tar(os.path.join(src, TRAIN_TAR), outer)


def write_lines(path, text):
    with open(path, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
