#!/usr/bin/env python3
"""Benchmark of the gs:// paths against a Cloud Storage emulator on 127.0.0.1.

    .venv/bin/python bench/gcs.py [--classes 8] [--per-class 100] [--workers 2]

Generates a release-shaped sample (bench/sample.py: ~110 KB photo-like JPEGs; default
800 training images in 8 classes + 200 validation images, ~110 MB of tars) under
bench/out/gcs/, starts gcp-storage-emulator (in memory) on a free port, then measures
in one run:
  * output: `./build.sh SAMPLE -o gs://...` (every worker uploads its own shards)
    against upstream's way: `./build.sh SAMPLE -o LOCAL`, then one serial
    upload_from_filename per shard (what imagenet_to_gcs.py did);
  * input: indexing the two tars from the bucket, with one exact ranged read per
    member header and with one streaming pass (8 MB reads), against indexing the
    local files; then reading every image (exact ranged reads, 8 in flight) from
    the bucket against os.pread from the local tars.
All conversions use --no-verify (verify re-reads the shards: not what is compared).
Each step is named on stderr as it starts, with its progress lines (the conversions'
own, every $ILSVRC_PROGRESS_EVERY seconds, default 5 here).
The emulator is a single-threaded Python HTTP server on the same 2 cores: it is not
the real service (no network latency, no parallel service side), so the ratios say
what our side costs, not what Cloud Storage will do.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "out", "gcs")
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("bench/gcs.py")

from bench import sample  # noqa: E402
from ilsvrc import pool  # noqa: E402
from ilsvrc.progress import EVERY_ENV, Progress  # noqa: E402
from ilsvrc.sources import containers, remote, tarindex  # noqa: E402


def _step(what):
    sys.stderr.write("bench/gcs.py: %s\n" % what)
    sys.stderr.flush()


def _run(args, env=None):
    """Run a command, its stderr (progress lines included) passed on as it comes;
    the seconds it took."""
    t = time.monotonic()
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    tail = []
    for line in proc.stderr:
        sys.stderr.write("  " + line)
        tail = (tail + [line])[-40:]
    if proc.wait():
        sys.exit("bench/gcs.py: %s failed:\n%s" % (" ".join(args), "".join(tail)))
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser(prog="bench/gcs.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sample.add_shape_options(ap, classes=8, per_class=100, val=200)
    ap.add_argument("--workers", type=int, default=2, metavar="N",
                    help="worker processes of each conversion and each read of the "
                    "images (default 2)")
    a = ap.parse_args()
    from gcs_emulator import Emulator

    os.environ.setdefault(EVERY_ENV, "5")
    src = os.path.join(OUT, "release-%d-%d-%d" % (a.classes, a.per_class, a.val))
    _step("the sample release in %s" % src)
    sample.build(src, a.classes, a.per_class, a.val)
    tars = [tarindex.TRAIN_TAR, tarindex.VAL_TAR]
    tar_bytes = sum(os.path.getsize(os.path.join(src, t)) for t in tars)
    images = a.classes * a.per_class + a.val
    emu = Emulator().start()
    res = {"images": images, "tar_bytes": tar_bytes, "workers": a.workers}
    try:
        emu.bucket("src")
        emu.bucket("dst")
        _step("the tars uploaded to the emulator")
        emu.upload_dir("src", "r/", src, tars)
        env = dict(os.environ, PYTHONPATH=REPO, ILSVRC_INDEX_DIR=os.path.join(OUT, "idx"))
        res.update(_output(emu, src, env, ["-j", str(a.workers), "--no-verify"]))
        res["index_local_s"], train, val = _index([os.path.join(src, n) for n in tars],
                                                  a.workers, "local files")
        objects = ["gs://src/r/" + n for n in tars]
        for mode, block in (("headers", 0), ("stream", 8 << 20)):
            tarindex.TAR_READ_BLOCK = block
            os.environ["ILSVRC_GS_INDEX_BLOCK"] = str(block)   # the workers' value
            res["index_%s_s" % mode] = _index(objects, a.workers, "bucket, %s" % mode)[0]
        os.environ.pop("ILSVRC_GS_INDEX_BLOCK")
        tarindex.TAR_READ_BLOCK = 8 << 20
        inner = len(train.group_names)
        res["index_headers_requests"] = len(train) + len(val) + 2 * inner + 4
        res["index_stream_requests"] = -(-tar_bytes // (8 << 20)) + inner
        res.update(_reads(train, val, src))
    finally:
        emu.stop()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    report(res)


def _output(emu, src, env, j):
    """Output: build.sh straight to gs:// against a local write + serial upload."""
    res = {}
    _step("output: ./build.sh to gs://")
    res["direct_s"] = _run(["./build.sh", src, "-o", "gs://dst/direct"] + j, env)
    local = os.path.join(OUT, "local-out")
    shutil.rmtree(local, ignore_errors=True)
    _step("output, upstream's way: ./build.sh to a local directory")
    res["local_write_s"] = _run(["./build.sh", src, "-o", local] + j, env)
    t = time.monotonic()
    bucket = emu.client().bucket("dst")
    files = [os.path.join(local, sub, name) for sub in ("train", "validation")
             for name in sorted(os.listdir(os.path.join(local, sub)))
             if not name.startswith(".")]
    _step("output, upstream's way: the shards uploaded one at a time")
    progress = Progress(len(files), "serial upload", unit="shards")
    for path in files:
        bucket.blob("serial/" + os.path.basename(path)).upload_from_filename(path)
        progress.update(1, os.path.getsize(path))
    progress.finish()
    res["serial_upload_s"] = time.monotonic() - t
    res["upstream_s"] = res["local_write_s"] + res["serial_upload_s"]
    res["local_scratch_bytes"] = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(local) for f in fs)
    shutil.rmtree(local)
    return res


def _index(paths, workers, how):
    """Input: index the two tars (the class tars' progress is indexing's own)."""
    _step("input: the tars indexed (%s)" % how)
    t = time.monotonic()
    with pool.Pool(workers) as runner:
        train = tarindex.index_train_tar(paths[0], runner)
        val = tarindex.index_flat_tar(paths[1])
    return time.monotonic() - t, train, val


def _read_all(listings, where):
    _step("input: every image read from %s" % where)
    progress = Progress(sum(len(lst) for lst in listings), "reading", unit="images")
    t = time.monotonic()
    n = 0
    reader = containers.Reader()
    for lst in listings:
        items = [lst.locate(i)[:3] for i in range(len(lst))]
        for data in remote.read_ahead(items, lambda it: reader.read(*it)):
            n += len(data)
            progress.update(1, len(data))
    reader.close()
    progress.finish()
    return time.monotonic() - t, n


def _reads(train, val, src):
    """Input: every image read from the local tars, then from the bucket."""
    res = {}
    res["read_local_s"], nbytes = _read_all([train, val], "the local tars (os.pread)")
    for lst in (train, val):
        lst.containers = [remote.ObjectSlices(c.path.replace(src + "/", "gs://src/r/"))
                          for c in lst.containers]
    res["read_gs_s"], nbytes2 = _read_all([train, val], "the bucket (ranged reads)")
    assert nbytes == nbytes2
    res["read_bytes"] = nbytes
    return res


def report(r):
    print("gs:// benchmark: %d images, %.0f MB of tars, %d workers, emulator on 127.0.0.1"
          % (r["images"], r["tar_bytes"] / 1e6, r["workers"]))
    print("output (1,024 + 128 shards)")
    print("  direct to gs://                 %7.1f s" % r["direct_s"])
    print("  upstream: local write           %7.1f s" % r["local_write_s"])
    print("            + serial upload       %7.1f s   (= %.1f s, %.0f MB of scratch)"
          % (r["serial_upload_s"], r["upstream_s"], r["local_scratch_bytes"] / 1e6))
    print("  upstream / direct               %7.2fx" % (r["upstream_s"] / r["direct_s"]))
    print("input: index the two tars")
    print("  local files                     %7.2f s" % r["index_local_s"])
    print("  bucket, header reads            %7.2f s   (~%d requests)"
          % (r["index_headers_s"], r["index_headers_requests"]))
    print("  bucket, streaming pass          %7.2f s   (~%d requests, all %.0f MB)"
          % (r["index_stream_s"], r["index_stream_requests"], r["tar_bytes"] / 1e6))
    print("input: read every image (%.0f MB)" % (r["read_bytes"] / 1e6))
    print("  local os.pread                  %7.2f s" % r["read_local_s"])
    print("  bucket, ranged reads, 8 in flight %5.2f s   (%.1fx local; %.0f reads/s)"
          % (r["read_gs_s"], r["read_gs_s"] / r["read_local_s"],
             r["images"] / r["read_gs_s"]))


if __name__ == "__main__":
    main()
