"""Task mode against one run: N tasks one after another with a shared index.

    .venv/bin/python bench/tasks.py [--tasks 4] [--workers 1] [--check decode]
                                    [--classes 40 --per-class 250 --val 1000]
    .venv/bin/python bench/tasks.py --index-size [MEMBERS]

Part 1 (default): builds (or reuses) a photo-sized sample under bench/out/, then
  * one ordinary run: `./build.sh SAMPLE -o OUT1`;
  * `./build.sh SAMPLE -o OUT2 --index-only`, then tasks 0..N-1 of N into OUT2,
    one after another (as N machines would run them at once);
and prints wall and CPU seconds (user + system of the command and all its worker
processes) of each, the ratio of the tasks' total CPU (index included) to the one
run's, each task's wall time as a fraction of the one run's, the fixed CPU cost of
a task ((tasks' total - one run) / (N - 1): start-up, TensorFlow import) and the CPU
ratio that fixed cost implies at the size of the full release (extrapolated).  The outputs are
compared byte for byte (they must be identical) and removed.  Not a test: the
figures go to docs/multi-machine.md.

Part 2 (--index-size): the index file for a synthetic listing of MEMBERS training
members (default the full release, 1,281,167, plus 50,000 validation members) with
release-like sizes and offsets: bytes, bytes per member, seconds to write and read.
"""

import argparse
import filecmp
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
from ilsvrc.venv import use_checkout_venv  # noqa: E402
use_checkout_venv("bench/tasks.py")

from bench import sample as bench_sample  # noqa: E402


def timed(cmd):
    """(wall s, cpu s, stderr) of a command, CPU summed over its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        sys.exit("%s failed:\n%s" % (" ".join(cmd), r.stderr[-3000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r.stderr


def same_tree(a, b):
    for sub in ("train", "validation"):
        names = sorted(n for n in os.listdir(os.path.join(a, sub)) if not n.startswith("."))
        other = sorted(n for n in os.listdir(os.path.join(b, sub)) if not n.startswith("."))
        if names != other:
            return False
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(a, sub),
                                                   os.path.join(b, sub), names,
                                                   shallow=False)
        if mismatch or errors:
            return False
    return True


def tasks_bench(a):
    out = os.path.join(HERE, "out")
    release = os.path.join(out, "tasks-sample-%d-%d-%d" % (a.classes, a.per_class, a.val))
    t = time.monotonic()
    bench_sample.build(release, a.classes, a.per_class, a.val)
    sys.stderr.write("sample %s ready (%.0f s)\n" % (release, time.monotonic() - t))
    one, split = os.path.join(out, "tasks-one"), os.path.join(out, "tasks-split")
    for d in (one, split):
        shutil.rmtree(d, ignore_errors=True)
    common = ["-j", str(a.workers), "--check", a.check]
    build = [os.path.join(REPO, "build.sh"), release]
    subprocess.run(["sync"])
    w1, c1, _ = timed(build + ["-o", one] + common)
    sys.stderr.write("one run: %.1f s wall, %.1f s CPU\n" % (w1, c1))
    subprocess.run(["sync"])
    wi, ci, _ = timed(build + ["-o", split, "--index-only", "-j", str(a.workers)])
    runs = []
    for k in range(a.tasks):
        w, c, err = timed(build + ["-o", split, "--task-index", str(k), "--task-count",
                                   str(a.tasks)] + common)
        if "index: read" not in err:
            sys.exit("task %d did not read the index:\n%s" % (k, err[-2000:]))
        runs.append((w, c))
        sys.stderr.write("task %d: %.1f s wall, %.1f s CPU\n" % (k, w, c))
    identical = same_tree(one, split)
    images = a.classes * a.per_class + a.val
    res = {
        "images": images, "tasks": a.tasks, "workers": a.workers, "check": a.check,
        "load_before": os.getloadavg(),
        "one_run": {"wall_s": round(w1, 2), "cpu_s": round(c1, 2)},
        "index_only": {"wall_s": round(wi, 2), "cpu_s": round(ci, 2)},
        "task_runs": [{"wall_s": round(w, 2), "cpu_s": round(c, 2)} for w, c in runs],
        "cpu_ratio": round((ci + sum(c for _, c in runs)) / c1, 3),
        "task_wall_fractions": [round(w / w1, 3) for w, _ in runs],
        "identical": identical,
    }
    # What a task costs beyond its share of the work (interpreter and TensorFlow
    # start-up in the main process and its worker), and what that means at the size
    # of the full release (an extrapolation: CPU per image measured here).
    fixed = (sum(c for _, c in runs) - c1) / max(a.tasks - 1, 1)
    per_image = max(c1 - fixed, 0) / images
    full = per_image * 1331167
    res["fixed_cpu_s_per_task"] = round(fixed, 2)
    res["full_release_cpu_ratio_extrapolated"] = round(
        (full + a.tasks * fixed + ci) / (full + fixed), 4)
    for d in (one, split):
        shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(res, indent=1))
    print("| run | wall s | CPU s | wall / one run |\n|---|---|---|---|")
    print("| one run | %.1f | %.1f | 1.00 |" % (w1, c1))
    print("| --index-only | %.1f | %.1f | %.2f |" % (wi, ci, wi / w1))
    for k, (w, c) in enumerate(runs):
        print("| task %d of %d | %.1f | %.1f | %.2f |" % (k, a.tasks, w, c, w / w1))
    print("| index + all tasks | %.1f | %.1f | CPU ratio %.2f |"
          % (wi + sum(w for w, _ in runs), ci + sum(c for _, c in runs), res["cpu_ratio"]))
    print("output identical to the one run: %s" % identical)
    print("fixed CPU per task %.1f s; extrapolated CPU ratio for the full release "
          "(1,331,167 images): %.4f" % (fixed, res["full_release_cpu_ratio_extrapolated"]))
    return 0 if identical else 1


def index_size(members):
    from bench.index_scale import N_VAL, synthetic
    from ilsvrc.sources import indexfile
    t = time.monotonic()
    train, val, _ = synthetic(members, N_VAL)
    rng = random.Random(1)
    offset = 10240
    for i in range(len(train)):                  # ILSVRC2012-like sizes, tar framing
        size = int(min(max(rng.lognormvariate(11.45, 0.55), 2000), 3_000_000))
        train.size[i] = size
        train.offset[i] = offset
        offset += 512 + (size + 511) // 512 * 512
        if i % 1300 == 1299:
            offset += 10240                      # the next inner tar's header and end
    stats = {"/data/ILSVRC2012_img_train.tar": [offset, 1], "/data/ILSVRC2012_img_val.tar":
             [val.offset[-1] + 200000, 2]}
    built = time.monotonic() - t
    path = os.path.join(HERE, "out", "synthetic.index")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = time.monotonic()
    size = indexfile.save(path, [train, val], stats, {"kind": "tar"}, base="/data")
    write_s = time.monotonic() - t
    t = time.monotonic()
    got = indexfile.load(path, stats, {"kind": "tar"}, base="/data")
    read_s = time.monotonic() - t
    assert list(got[0].offset) == list(train.offset) and got[0].names == train.names
    os.remove(path)
    n = len(train) + len(val)
    res = {"members": n, "index_bytes": size, "bytes_per_member": round(size / n, 2),
           "write_s": round(write_s, 2), "read_s": round(read_s, 2),
           "listing_build_s": round(built, 2)}
    print(json.dumps(res))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench/tasks.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=4, metavar="N",
                   help="number of tasks (default 4)")
    p.add_argument("--workers", type=int, default=1, metavar="W",
                   help="worker processes of the one run and of every task (default 1)")
    p.add_argument("--check", default="decode", choices=("header", "decode"),
                   help="image check of every conversion (default decode)")
    bench_sample.add_shape_options(p, classes=40, per_class=250, val=1000)
    p.add_argument("--index-size", type=int, nargs="?", const=1281167, default=None,
                   metavar="MEMBERS", help="part 2 instead of part 1: the index file of "
                   "MEMBERS training members (default 1,281,167)")
    a = p.parse_args(argv)
    if a.index_size is not None:
        return index_size(a.index_size)
    return tasks_bench(a)


if __name__ == "__main__":
    sys.exit(main())
