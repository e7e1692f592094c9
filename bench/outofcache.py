#!/usr/bin/env python3
"""Benchmark out of the page cache: a release bigger than memory, end to end, against
the copy floor measured in the same run.  Run by hand (not in CI); it needs ~2x the
release size of free disk (default release: 1.1 x this machine's memory).

    .venv/bin/python bench/outofcache.py [--gb GB] [--workers W] [--dir DIR]
                                         [--keep-release] [--no-verify-sh]
                                         [--baseline CHECKOUT]
    .venv/bin/python bench/outofcache.py --report     # the last run's table again

1. Generates (once; reused while its `done` marker matches) a release-shaped sample of
   GB gigabytes in DIR/release: 1000 inner <synset>.tar of the same 48 photo-like
   ~112 KB JPEGs under different names, plus the special images, 10,000 validation
   images (bench/sample.py builds it).
2. Before each phase: `sync`, then every file of the release and of the outputs is
   dropped from the page cache with posix_fadvise(POSIX_FADV_DONTNEED) (no root
   needed; other programs' cache is left alone); `fincore` confirms what is resident.
3. Phases, one after the other on the same disk:
   * ours: `./build.sh DIR/release -o DIR/out -j W` (index, plan, write with the
     in-worker check, the end-of-run summary);
   * verify.sh: `./verify.sh official DIR/out --source DIR/release` -- the full independent
     re-read from disk that the in-worker check replaces (skip: --no-verify-sh);
   * with --baseline CHECKOUT (another checkout, e.g. the commit before a change):
     our output is deleted and that checkout's ./build.sh runs the same way (from
     its own directory), for ours/baseline in the same run;
   * our output is deleted; floor: bench/floor.py reads every member once and writes
     the same bytes into the same 1,152 files (fsync + rename each), no TensorFlow,
     twice: in tar order (the tars front to back: the copy floor) and in the plan's
     order (the training images in their seeded shuffle, as the converter must read
     them to write shuffled shards with bounded memory).
4. Prints a table and writes bench/out/outofcache.json.  Everything generated is
   deleted at the end unless --keep-release (then only the outputs are).

Peak memory is the summed VmRSS (and PSS) of the command's whole process tree,
sampled every 50 ms (bench/run.py's sampler).  Stages come from the time each line of
the command's output appeared: index + plan until "N training and M validation
images", write until the last progress line, verify until "verified:"; the plan alone
is timed again in a separate process on the same listing to split it from the index.
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
sys.path.insert(0, REPO)
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("bench/outofcache.py")

from bench.run import PY, _when, run_tree, shard_sizes  # noqa: E402

TRAIN_TAR, VAL_TAR = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"
IMAGE_BYTES = 112e3          # the sample's average JPEG (bench/sample.py)
CLASSES, VAL = 1000, 10000


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no MemTotal in /proc/meminfo")


def files_under(*dirs):
    for d in dirs:
        for root, _, names in os.walk(d):
            for n in names:
                yield os.path.join(root, n)


def evict(*dirs):
    """sync, then drop every file under `dirs` from the page cache; return the bytes
    still resident afterwards (fincore), or None where fincore is missing."""
    subprocess.run(["sync"], check=True)
    paths = list(files_under(*dirs))
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return resident(paths)


def resident(paths):
    if not paths or shutil.which("fincore") is None:
        return None
    total = 0
    for i in range(0, len(paths), 500):
        r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES"]
                           + paths[i:i + 500], capture_output=True, text=True)
        total += sum(int(x) for x in r.stdout.split() if x.isdigit())
    return total


def build_release(path, gb, val=VAL):
    per_class = max(1, int(round((gb * 1e9 - val * IMAGE_BYTES) / (CLASSES * IMAGE_BYTES))))
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from bench import sample\n"
            "sample.build(%r, %d, %d, %d)\n" % (REPO, path, CLASSES, per_class, val))
    t = time.monotonic()
    subprocess.run([PY, "-c", code], cwd=REPO, check=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return per_class, time.monotonic() - t


def plan_seconds(release):
    """Index (from whatever is cached) then time the plan alone, in a fresh process."""
    code = r"""
import json, sys, time
sys.path.insert(0, %r)
from ilsvrc import pool
from ilsvrc.formats import official
from ilsvrc.sources import discover
from ilsvrc.write import resume
with pool.Pool(0) as runner:
    listings, options = official.read_source(discover.find_source(%r, "tar"), runner)
t = time.perf_counter()
splits, _ = official.plan_listings(listings, "/nonexistent", **options.as_kwargs())
for s in splits:
    resume.fingerprint(s, "header")
print(json.dumps({"plan_s": time.perf_counter() - t}))
""" % (REPO, release)
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["plan_s"]


def stages(res):
    lines = res["lines"]
    planned = _when(lines, "validation images ->")
    progress = [t for t, l in lines if l.startswith("converting: ")]
    verified = _when(lines, "verified:")
    end_write = max(progress) if progress else verified
    return {"index_plan_s": planned, "write_s": end_write - planned,
            "verify_after_write_s": (verified - end_write) if verified else None,
            "exit_s": res["wall"] - (verified or end_write),
            "first_partial_s": res.get("first_partial")}


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench/outofcache.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gb", type=float, default=None,
                   help="release size in GB (default: 1.1 x this machine's memory)")
    p.add_argument("--workers", type=int, default=None, metavar="W",
                   help="worker processes of every phase (default: one per core)")
    p.add_argument("--dir", default=os.path.join(BENCH, "out", "outofcache"),
                   help="where the release, the outputs and the floor's files go "
                   "(default: bench/out/outofcache)")
    p.add_argument("--keep-release", action="store_true", help="keep the generated "
                   "release at the end (the outputs are deleted anyway)")
    p.add_argument("--no-verify-sh", action="store_true", help="skip the ./verify.sh "
                   "phase")
    p.add_argument("--baseline", metavar="CHECKOUT", help="another checkout whose "
                   "./build.sh runs on the same release after ours")
    p.add_argument("--report", action="store_true", help="print the table of the last "
                   "run (bench/out/outofcache.json) again, run nothing")
    a = p.parse_args(argv)
    if a.report:
        return show_last()
    from ilsvrc import pool
    workers = a.workers or pool.default_workers()
    memory = mem_total()
    gb = a.gb or round(1.1 * memory / 1e9, 1)
    need = 2 * gb * 1e9 + 2e9
    release = os.path.join(a.dir, "release")
    out, flo = os.path.join(a.dir, "out"), os.path.join(a.dir, "floor")
    os.makedirs(a.dir, exist_ok=True)
    for d in (out, flo):
        shutil.rmtree(d, ignore_errors=True)
    have = shutil.disk_usage(a.dir).free + (sum(os.path.getsize(f) for f in
                                                 files_under(release)))
    if have < need:
        raise SystemExit("outofcache: needs %.0f GB free under %s (a %.1f GB release, one "
                         "output of the same size, 2 GB spare); %.0f GB available. Use "
                         "--gb or --dir." % (need / 1e9, a.dir, gb, have / 1e9))
    print("release: %.1f GB in %s (memory %.1f GiB); disk needed: %.0f GB"
          % (gb, release, memory / 2**30, need / 1e9))
    sys.stdout.flush()
    per_class, build_s = build_release(release, gb)
    tar_bytes = sum(os.path.getsize(os.path.join(release, n)) for n in (TRAIN_TAR, VAL_TAR))
    images = CLASSES * per_class + VAL
    print("release ready: %d images, %.2f GB of tars (%.2f x memory), %.0f s"
          % (images, tar_bytes / 1e9, tar_bytes / memory, build_s))
    results = {"workers": workers, "images": images, "tar_bytes": tar_bytes,
               "memory": memory, "build_s": build_s, "cores": pool.default_workers()}

    results["resident_before_ours"] = evict(release)
    res = run_tree(["./build.sh", release, "-o", out, "-j", str(workers)],
                   [os.path.join(out, "train"), os.path.join(out, "validation")])
    res.update(stages(res))
    res["summary"] = [l for _, l in res["lines"] if l.startswith("verified:")]
    res.pop("lines")
    results["ours"] = res
    print("ours: %.1f s, peak RSS %.0f MiB" % (res["wall"], res["peak_rss"] / 2**20))
    sys.stdout.flush()
    results["plan_s"] = plan_seconds(release)
    sizes = shard_sizes(out)
    sizes_file = os.path.join(a.dir, "shard-sizes.json")
    with open(sizes_file, "w") as f:
        json.dump(sizes, f)
    results["bytes_written"] = sum(sizes.values())

    if not a.no_verify_sh:
        results["resident_before_verify_sh"] = evict(release, out)
        v = run_tree(["./verify.sh", "official", out, "--source", release, "-j",
                      str(workers)])
        v.pop("lines")
        results["verify_sh"] = v
        print("verify.sh: %.1f s" % v["wall"])
        sys.stdout.flush()

    shutil.rmtree(out)
    if a.baseline:
        results["resident_before_baseline"] = evict(release)
        tree = os.path.abspath(a.baseline)
        b = run_tree([os.path.join(tree, "build.sh"), release, "-o", out, "-j",
                      str(workers)], [os.path.join(out, "train")], cwd=tree)
        b.update(stages(b))
        b.pop("lines")
        b["checkout"] = tree
        results["baseline"] = b
        print("baseline: %.1f s" % b["wall"])
        sys.stdout.flush()
        shutil.rmtree(out)
    for key, order in (("floor", "listing"), ("floor_plan", "plan")):
        results["resident_before_" + key] = evict(release)
        f = run_tree([PY, os.path.join(BENCH, "floor.py"), release, flo, str(workers),
                      sizes_file, "--order", order])
        info = json.loads(f.pop("lines")[-1][1])
        f.update(info)
        results[key] = f
        print("%s (%s order): %.1f s" % (key, order, f["total_s"]))
        sys.stdout.flush()
        shutil.rmtree(flo)
    if not a.keep_release:
        shutil.rmtree(a.dir)
    else:
        os.remove(sizes_file)
    os.makedirs(os.path.join(BENCH, "out"), exist_ok=True)
    with open(os.path.join(BENCH, "out", "outofcache.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    report(results)


def report(r):
    o, f = r["ours"], r["floor"]
    mb, n = r["tar_bytes"] / 1e6, r["images"]
    index_s = o["index_plan_s"] - r["plan_s"]
    print()
    print("| | wall s | images/s | MB/s | peak RSS (PSS) MiB | CPU s | load before/after |")
    print("|---|---|---|---|---|---|---|")
    print("| ours, %d workers | %.1f | %.0f | %.0f | %.0f (%.0f) | %.0f | %.1f/%.1f |" % (
        r["workers"], o["wall"], n / o["wall"], mb / o["wall"], o["peak_rss"] / 2**20,
        o["peak_pss"] / 2**20, o["cpu_s"], o["load"], o["load_after"]))
    if "baseline" in r:
        b = r["baseline"]
        print("| baseline (%s) | %.1f | %.0f | %.0f | %.0f (%.0f) | %.0f | %.1f/%.1f |" % (
            b["checkout"], b["wall"], n / b["wall"], mb / b["wall"], b["peak_rss"] / 2**20,
            b["peak_pss"] / 2**20, b["cpu_s"], b["load"], b["load_after"]))
    if "verify_sh" in r:
        v = r["verify_sh"]
        print("| ./verify.sh (full re-read) | %.1f | %.0f | %.0f | %.0f (%.0f) | %.0f | "
              "%.1f/%.1f |" % (v["wall"], n / v["wall"], r["bytes_written"] / 1e6 / v["wall"],
                               v["peak_rss"] / 2**20, v["peak_pss"] / 2**20, v["cpu_s"],
                               v["load"], v["load_after"]))
    floors = [("floor (copy, fsync; tar order)", f)]
    if "floor_plan" in r:
        floors.append(("floor in the plan's order (copy, fsync)", r["floor_plan"]))
    for name, fl in floors:
        print("| %s | %.1f | %.0f | %.0f | %.0f (%.0f) | %.0f | %.1f/%.1f |" % (
            name, fl["total_s"], n / fl["total_s"], mb / fl["total_s"],
            fl["peak_rss"] / 2**20, fl["peak_pss"] / 2**20, fl["cpu_s"], fl["load"],
            fl["load_after"]))
    print("(MB/s: tar bytes read per second; for verify.sh, shard bytes)")
    print()
    print("ours / floor (rate): %.0f%%" % (100 * f["total_s"] / o["wall"]))
    if "baseline" in r:
        print("ours / baseline: wall %.2f, CPU %.2f (CPU ms per image: ours %.3f, "
              "baseline %.3f)" % (o["wall"] / r["baseline"]["wall"],
                                  o["cpu_s"] / r["baseline"]["cpu_s"],
                                  o["cpu_s"] * 1e3 / n, r["baseline"]["cpu_s"] * 1e3 / n))
    if "floor_plan" in r:
        print("ours / floor in the plan's order (rate): %.0f%%"
              % (100 * r["floor_plan"]["total_s"] / o["wall"]))
    print("ours stages: index %.1f s + plan %.1f s, write (with the in-worker check) "
          "%.1f s [first shard started at %.1f s], after the last shard %.1f s, exit "
          "%.1f s" % (index_s, r["plan_s"], o["write_s"], o["first_partial_s"] or 0,
                      o["verify_after_write_s"] or 0, o["exit_s"]))
    for name, fl in floors:
        print("%s stages: index %.1f s, copy %.1f s (%.0f MB/s of tar bytes)"
              % (name.split(" (")[0], fl["index_s"], fl["copy_s"], mb / fl["copy_s"]))
    print("write stage: ours %.0f MB/s (tar bytes)" % (mb / o["write_s"]))
    print("page cache before the phases (bytes of these files resident): %s" % ", ".join(
        "%s %s" % (k[len("resident_before_"):], r[k]) for k in sorted(r)
        if k.startswith("resident_before_")))
    for line in o.get("summary", []):
        print("summary line: " + line)


def show_last():
    """--report: the table of the last run again."""
    last = os.path.join(BENCH, "out", "outofcache.json")
    if not os.path.exists(last):
        print("bench/outofcache.py: no results yet (%s): run the benchmark first" % last)
        return
    with open(last) as fh:
        report(json.load(fh))


if __name__ == "__main__":
    main()
