#!/usr/bin/env python3
"""Benchmark of `./build.sh` end to end from the tars, against the I/O floor.

    .venv/bin/python bench/run.py [--repeat N] [--workers 1,2] [--quick] [--no-scale]
                                  [--classes C --per-class P --val V] [--baseline DIR]

Generates (once; cached under bench/out/) a release-shaped sample of 16,000 training
images in 40 classes + 1,000 validation images of ~110 KB 500x375 JPEGs, then
measures in one run, for each image check (header, decode) and worker count:
  * images/s and MB/s (tar bytes read per second) of `./build.sh` end to end
    (index, plan, write, verify), and of the write stage alone;
  * the floor: bench/floor.py reading the same members from the same tars with the
    same number of processes and writing the same bytes into the same shard files
    (fsync + rename each, like the converter), no TensorFlow, no work;
  * the ratio floor time / our time;
  * CPU seconds (user + system of the command and every process it waited for) and
    CPU milliseconds per image, ours and the floor's: what the work costs whatever
    else runs on the machine;
  * with --baseline DIR (another checkout, e.g. the commit before a change): its
    ./build.sh on the same sample, run in turn with ours (ours, baseline, floor in
    each repeat), and the ratios ours/baseline of CPU and of wall time, so that a
    before/after comparison is measured in one run on one machine;
  * peak memory of the whole process tree: every 50 ms the VmRSS (and the PSS) of the
    command and all its descendants from /proc is summed, the maximum sum is kept.
    RSS counts the shared TensorFlow libraries once per process, so it overstates;
    PSS splits shared pages between the processes;
  * time until the first shard file exists, and a complete run on a 30-image sample.
Then memory against the number of images (4,000 vs 40,000 small images), the main
process's index and plan at 1.28 M members (bench/index_scale.py) and CRC32C speed.
Results: a table on stdout and bench/out/results.json.  Each configuration runs
--repeat times (default 3); the table shows the median and the best.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "out")
sys.path.insert(0, REPO)
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("bench/run.py")

from bench import sample as bsample  # noqa: E402
from ilsvrc import pool  # noqa: E402

PY = sys.executable


# --------------------------------------------------------------------------- memory

def _children():
    """{pid: ppid} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    stat = f.read()
                out[int(name)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def _tree(root):
    parents = _children()
    pids, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in pids:
                pids.add(child)
                frontier.append(child)
    return pids


def _mem(pid):
    rss = pss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


class Sampler(threading.Thread):
    """Peak of the summed RSS/PSS of a process tree, and when a file first appears."""

    def __init__(self, pid, watch_dirs=(), every=0.05):
        super().__init__(daemon=True)
        self.pid, self.watch, self.every = pid, watch_dirs, every
        self.peak_rss = self.peak_pss = self.max_procs = 0
        self.first_file = self.first_partial = None
        self.start_time = time.monotonic()
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            pids = _tree(self.pid)
            rss = pss = 0
            for p in pids:
                r, s = _mem(p)
                rss, pss = rss + r, pss + s
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.max_procs = max(self.max_procs, len(pids))
            if self.first_file is None:
                for d in self.watch:
                    try:
                        names = os.listdir(d)
                    except OSError:
                        continue
                    now = time.monotonic() - self.start_time
                    if self.first_partial is None and any(n.endswith(".partial")
                                                          for n in names):
                        self.first_partial = now
                    if any(not n.startswith(".") for n in names):
                        self.first_file = now
            self.stop.wait(self.every)


def run_tree(cmd, watch_dirs=(), env=None, cwd=REPO):
    """Run cmd in `cwd`; return dict(wall, rc, lines [(t, line)], peak_rss, peak_pss,
    first_file)."""
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])    # other work on the machine, for the record
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    sampler = Sampler(proc.pid, watch_dirs)
    sampler.start_time = start
    sampler.start()
    lines = []
    for line in proc.stdout:
        lines.append((time.monotonic() - start, line.rstrip("\n")))
    rc = proc.wait()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open("/proc/loadavg") as f:
        load_after = float(f.read().split()[0])
    # CPU seconds of the command and every descendant it waited for (its workers)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sampler.stop.set()
    sampler.join()
    if rc != 0:
        sys.stderr.write("".join(l + "\n" for _, l in lines))
        raise SystemExit("benchmark command failed: %s" % " ".join(cmd))
    return {"wall": wall, "cpu_s": cpu, "lines": lines, "load": load,
            "load_after": load_after,
            "peak_rss": sampler.peak_rss,
            "peak_pss": sampler.peak_pss, "first_file": sampler.first_file,
            "first_partial": sampler.first_partial,
            "procs": sampler.max_procs}


def _when(lines, text):
    for t, line in lines:
        if text in line:
            return t
    return None


# --------------------------------------------------------------------------- runs

def fresh(path):
    if os.path.exists(path):
        shutil.rmtree(path)
    subprocess.run(["sync"])
    time.sleep(1)


def shard_sizes(out_dir):
    sizes = {}
    for sub in ("train", "validation"):
        for name in os.listdir(os.path.join(out_dir, sub)):
            if not name.startswith("."):
                sizes[sub + "/" + name] = os.path.getsize(os.path.join(out_dir, sub, name))
    return sizes


def build(release, out, workers, check, tree=REPO):
    """One ./build.sh of checkout `tree`, run from `tree` (python -m puts the current
    directory first on the module path: from elsewhere it could import another
    checkout's ilsvrc)."""
    res = run_tree([os.path.join(tree, "build.sh"), release, "-o", out, "-j", str(workers),
                    "--check", check],
                   [os.path.join(out, "train"), os.path.join(out, "validation")], cwd=tree)
    lines = res.pop("lines")
    planned = _when(lines, "validation images ->")
    verify_start = _when(lines, "converting: ")
    last_conv = max((t for t, l in lines if l.startswith("converting: ")), default=None)
    res["index_plan_end"] = planned
    res["write_s"] = (last_conv or verify_start) - planned
    res["verify_s"] = _when(lines, "verified:") - (last_conv or verify_start)
    return res


def floor(release, out, workers, sizes_file):
    res = run_tree([PY, os.path.join(BENCH, "floor.py"), release, out, str(workers),
                    sizes_file])
    info = json.loads(res.pop("lines")[-1][1])
    res.update(info)
    return res


def median_best(values):
    return statistics.median(values), min(values)


def main(argv=None):
    global OUT
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, metavar="N", help="runs of each "
                   "configuration (default 3; 1 with --quick)")
    p.add_argument("--workers", default=None, metavar="LIST", help="comma-separated "
                   "worker counts "
                   "(default: 1 and all cores)")
    p.add_argument("--checks", default="header,decode", metavar="LIST",
                   help="comma-separated image checks of build.sh to measure (default: "
                   "header,decode)")
    p.add_argument("--quick", action="store_true", help="a 4,000 + 500 image sample, "
                   "one repeat, no scaling runs")
    p.add_argument("--no-scale", action="store_true", help="skip memory scaling, "
                   "index and CRC measurements")
    p.add_argument("--report", action="store_true", help="print the tables of the last "
                   "run (bench/out/results.json) again")
    bsample.add_shape_options(p, classes=40, per_class=400, val=1000)
    p.add_argument("--baseline", metavar="DIR", help="another checkout whose ./build.sh "
                   "runs in turn with ours on the same sample (ratios ours/baseline)")
    p.add_argument("--dir", default=OUT, help="where the samples, outputs and "
                   "results.json go (default: bench/out)")
    a = p.parse_args(argv)
    OUT = os.path.abspath(a.dir)
    cores = pool.default_workers()
    workers = [int(w) for w in a.workers.split(",")] if a.workers else sorted({1, cores})
    if a.report and not os.path.exists(os.path.join(OUT, "results.json")):
        print("bench/run.py: no results yet (%s): run the benchmark first"
              % os.path.join(OUT, "results.json"))
        return 0
    if a.report:
        with open(os.path.join(OUT, "results.json")) as f:
            res = json.load(f)
        return report(res, sorted({r["workers"] for r in res["runs"]}))
    os.makedirs(OUT, exist_ok=True)
    env_note = {"cores": cores, "python": sys.version.split()[0]}
    if a.quick:
        a.repeat, a.no_scale = 1, True
        classes, per_class, nval = 40, 100, 500
    else:
        classes, per_class, nval = a.classes, a.per_class, a.val
    release = os.path.join(OUT, "photo-%dx%d-%d" % (classes, per_class, nval))
    t = time.monotonic()
    bsample.build(release, classes, per_class, nval)
    env_note["sample_s"] = time.monotonic() - t
    images = classes * per_class + nval
    tar_bytes = bsample.release_bytes(release)
    print("sample: %s: %d images, %.0f MB of tars (%.0f KB/image), ready in %.1f s; "
          "the tars are in the page cache (just written or read), for our runs and the "
          "floor alike" % (release, images, tar_bytes / 1e6, tar_bytes / images / 1e3,
                           env_note["sample_s"]))
    run_out = os.path.join(OUT, "run")
    floor_out = os.path.join(OUT, "floor")
    results = {"env": env_note, "images": images, "tar_bytes": tar_bytes, "runs": []}

    # startup: a complete run on a 30-image sample
    tiny = os.path.join(OUT, "tiny")
    if not os.path.exists(os.path.join(tiny, "done")):
        shutil.rmtree(tiny, ignore_errors=True)
        subprocess.run([PY, "-m", "ilsvrc.testing.sample", tiny], cwd=REPO, check=True,
                       env=dict(os.environ, PYTHONPATH=REPO), capture_output=True)
        open(os.path.join(tiny, "done"), "w").close()
    startup = {}
    for w in workers:
        fresh(os.path.join(tiny, "o"))
        startup[w] = run_tree(["./build.sh", tiny, "-o", os.path.join(tiny, "o"), "-j",
                               str(w)])["wall"]
    results["startup_tiny_s"] = startup

    if a.baseline:
        results["baseline"] = os.path.abspath(a.baseline)
    for check in a.checks.split(","):
        for w in workers:
            ours, base, flo = [], [], []
            for _ in range(a.repeat):
                fresh(run_out)
                ours.append(build(release, run_out, w, check))
                sizes_file = os.path.join(OUT, "shard-sizes.json")
                with open(sizes_file, "w") as f:
                    json.dump(shard_sizes(run_out), f)
                if a.baseline:
                    fresh(run_out)
                    base.append(build(release, run_out, w, check, a.baseline))
                fresh(floor_out)
                flo.append(floor(release, floor_out, w, sizes_file))
            results["runs"].append({"check": check, "workers": w, "ours": ours,
                                    "floor": flo, "baseline": base})
            _print_row(check, w, ours, flo, images, base)
    shutil.rmtree(run_out, ignore_errors=True)
    shutil.rmtree(floor_out, ignore_errors=True)
    if not a.no_scale:
        results["scale"] = memory_scaling(workers[-1])
        results["index"] = json.loads(subprocess.run(
            [PY, os.path.join(BENCH, "index_scale.py")], capture_output=True, text=True,
            check=True).stdout)
        results["crc"] = crc_speed()
        results["tar_index"] = tar_index_speed(release)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    report(results, workers)


def _cpu_ms(runs, images):
    """Median CPU milliseconds per image of `runs`."""
    return statistics.median([r.get("cpu_s", 0) for r in runs]) * 1000 / images


def _print_row(check, w, ours, flo, images, base=()):
    wall, best = median_best([r["wall"] for r in ours])
    fwall, fbest = median_best([r["total_s"] for r in flo])
    print("  check=%-6s workers=%d: ours %.2f s (best %.2f) = %.0f images/s, CPU %.3f "
          "ms/image; floor %.2f s (best %.2f) = %.0f images/s, CPU %.3f ms/image; ratio "
          "floor/ours %.0f%%" % (
              check, w, wall, best, images / wall, _cpu_ms(ours, images), fwall, fbest,
              images / fwall, _cpu_ms(flo, images), 100 * fwall / wall))
    if base:
        bwall, bbest = median_best([r["wall"] for r in base])
        pairs = list(zip(ours, base))
        print("    baseline %.2f s (best %.2f), CPU %.3f ms/image; ours/baseline, median "
              "of the %d pairs: CPU %.2f, wall %.2f" % (
                  bwall, bbest, _cpu_ms(base, images), len(pairs),
                  statistics.median(o["cpu_s"] / b["cpu_s"] for o, b in pairs),
                  statistics.median(o["wall"] / b["wall"] for o, b in pairs)))
    sys.stdout.flush()


# --------------------------------------------------------------------------- extras

def memory_scaling(workers):
    out = []
    for per_class in (100, 1000):
        release = os.path.join(OUT, "tiny-40x%d" % per_class)
        bsample.build(release, 40, per_class, 500, kind="tiny")
        o = os.path.join(OUT, "run-tiny")
        fresh(o)
        res = run_tree(["./build.sh", release, "-o", o, "-j", str(workers)])
        res.pop("lines")
        res["images"] = 40 * per_class + 500
        out.append(res)
        shutil.rmtree(o, ignore_errors=True)
    return out


def tar_index_speed(release):
    """Seconds per member to index the sample's training tar in one process."""
    code = r"""
import json, sys, time
sys.path.insert(0, %r)
from ilsvrc import pool
from ilsvrc.sources import tarindex
with pool.Pool(0) as runner:
    t = time.perf_counter()
    listing = tarindex.index_train_tar(%r, runner)
    el = time.perf_counter() - t
print(json.dumps({"members": len(listing), "seconds": el}))
""" % (REPO, os.path.join(release, "ILSVRC2012_img_train.tar"))
    return json.loads(subprocess.run([PY, "-c", code], capture_output=True, text=True,
                                     check=True).stdout.strip().splitlines()[-1])


def crc_speed():
    """Pure-Python CRC32C vs TensorFlow's record writer, MB/s (run in a subprocess)."""
    code = r"""
import json, os, time, sys
sys.path.insert(0, %r)
from ilsvrc.records import tfrecord
from ilsvrc.tfimport import tensorflow
from ilsvrc import crc32c
tf = tensorflow()
payload = os.urandom(1 << 20)
t = time.perf_counter(); crc32c.value(payload); py = time.perf_counter() - t
path = os.path.join(%r, "crc-test.tfrecord")
n = 200
w = tf.io.TFRecordWriter(path)
t = time.perf_counter()
for _ in range(n): w.write(payload)
w.close(); tfw = time.perf_counter() - t
os.remove(path)
print(json.dumps({"python_crc_MBps": 1.048576 / py, "tf_writer_MBps": n * 1.048576 / tfw}))
""" % (REPO, OUT)
    return json.loads(subprocess.run([PY, "-c", code], capture_output=True, text=True,
                                     check=True).stdout.strip().splitlines()[-1])


def _report_baseline(res, images):
    """The baseline checkout's runs, in turn with ours: its figures and the ratios."""
    runs = [r for r in res["runs"] if r.get("baseline")]
    if not runs:
        return
    print()
    print("baseline: %s (its ./build.sh, run in turn with ours on the same sample)"
          % res.get("baseline"))
    print("| check | workers | baseline: wall s (best) | CPU s | CPU ms/image | ours/"
          "baseline CPU (median of pairs) | ours/baseline wall |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        wall, best = median_best([x["wall"] for x in r["baseline"]])
        pairs = list(zip(r["ours"], r["baseline"]))
        print("| %s | %d | %.2f (%.2f) | %.1f | %.3f | %.2f | %.2f |" % (
            r["check"], r["workers"], wall, best,
            statistics.median([x["cpu_s"] for x in r["baseline"]]),
            _cpu_ms(r["baseline"], images),
            statistics.median(o["cpu_s"] / b["cpu_s"] for o, b in pairs),
            statistics.median(o["wall"] / b["wall"] for o, b in pairs)))


def report(res, workers):
    images, tar_bytes = res["images"], res["tar_bytes"]
    print()
    print("| check | workers | ours: wall s (best) | images/s | MB/s | write stage "
          "images/s | floor: wall s (best) | floor images/s | floor/ours | peak RSS "
          "(PSS) MiB | first shard s | load before | CPU s ours / floor | CPU ms/image "
          "ours / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in res["runs"]:
        wall, best = median_best([x["wall"] for x in r["ours"]])
        wst = statistics.median([x["write_s"] for x in r["ours"]])
        fwall, fbest = median_best([x["total_s"] for x in r["floor"]])
        rss = max(x["peak_rss"] for x in r["ours"]) / 2**20
        pss = max(x["peak_pss"] for x in r["ours"]) / 2**20
        first = statistics.median([x["first_file"] or 0 for x in r["ours"]])
        load = "/".join("%.1f" % x["load"] for x in r["ours"])
        cpu = "%.1f / %.1f" % (
            statistics.median([x.get("cpu_s", 0) for x in r["ours"]]),
            statistics.median([x.get("cpu_s", 0) for x in r["floor"]]))
        per = "%.3f / %.3f" % (_cpu_ms(r["ours"], images), _cpu_ms(r["floor"], images))
        print("| %s | %d | %.2f (%.2f) | %.0f | %.0f | %.0f | %.2f (%.2f) | %.0f | %.0f%% | "
              "%.0f (%.0f) | %.1f | %s | %s | %s |" % (
                  r["check"], r["workers"], wall, best, images / wall,
                  tar_bytes / wall / 1e6, images / wst, fwall, fbest, images / fwall,
                  100 * fwall / wall, rss, pss, first, load, cpu, per))
    _report_baseline(res, images)
    print()
    print("startup (complete run on a 30-image sample): " + ", ".join(
        "%d worker(s) %.2f s" % (int(w), s)
        for w, s in sorted(res["startup_tiny_s"].items())))
    if "scale" in res:
        print("memory vs images (small JPEGs, %d workers): " % workers[-1] + "; ".join(
            "%d images: peak RSS %.0f MiB (PSS %.0f MiB), %.1f s" % (
                s["images"], s["peak_rss"] / 2**20, s["peak_pss"] / 2**20, s["wall"])
            for s in res["scale"]))
        ix = res["index"]
        print("main process at %d training members: listing %.1f s, %.0f bytes/member; "
              "plan %.1f s, +%.0f bytes/member; fingerprints %.1f s; all shard item "
              "lists %.1f s; peak RSS %.0f MiB" % (
                  ix["members"], ix["listing_s"], ix["listing_bytes_per_member"],
                  ix["plan_s"], ix["plan_bytes_per_member"], ix["fingerprint_s"],
                  ix["shard_items_s"], ix["peak_rss_bytes"] / 2**20))
        c = res["crc"]
        print("CRC32C: pure Python %.1f MB/s; TensorFlow's record writer %.0f MB/s"
              % (c["python_crc_MBps"], c["tf_writer_MBps"]))
        ti = res["tar_index"]
        per = ti["seconds"] / ti["members"]
        print("tar index: %d members in %.2f s on one core = %.1f us/member (1.28 M "
              "members: %.0f s on one core)" % (ti["members"], ti["seconds"], per * 1e6,
                                                 per * ix["members"]))
        w = workers[-1]
        for check in ("header", "decode"):
            runs = [r for r in res["runs"] if r["check"] == check and r["workers"] == w]
            if not runs:
                continue
            ours = runs[0]["ours"]
            # steady rate: images over the write stage from the moment the first
            # shard is being written (the workers' TensorFlow import comes before)
            first = [x.get("first_partial") or x["first_file"] for x in ours]
            steady = statistics.median([
                images / (x["index_plan_end"] + x["write_s"] - f)
                for x, f in zip(ours, first)])
            startup = statistics.median([f - x["index_plan_end"]
                                         for x, f in zip(ours, first)])
            # after the last shard: only the summary (each worker checked its shards)
            verify_per_image = statistics.median([x["verify_s"] for x in ours]) / images
            full = ix["members"] + 50000
            total = (per * ix["members"] / w + ix["plan_s"] + ix["fingerprint_s"]
                     + startup + full / steady + full * verify_per_image)
            print("projected full ILSVRC2012 (%d images), check=%s, %d workers: index "
                  "%.0f s + plan %.0f s + worker start %.1f s + write %.0f s (%.0f "
                  "images/s) + after the last shard %.0f s = %.1f min = %.0f images/s "
                  "end to end (in the page cache; bench/outofcache.py measures the "
                  "disk)" % (
                      full, check, w, per * ix["members"] / w,
                      ix["plan_s"] + ix["fingerprint_s"], startup, full / steady, steady,
                      full * verify_per_image, total / 60, full / total))


if __name__ == "__main__":
    main()
