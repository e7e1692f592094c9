#!/usr/bin/env python3
"""Benchmark of the Hugging Face parquet route against the tar route and the copy
floor, out of the page cache, on a copy bigger than the memory the run may use.
Run by hand (root, cgroup v1; not in CI).

    .venv/bin/python bench/hfcopy.py [--gb GB] [--mem-gb GB] [-j W] [--file-mb MB]
                                     [--dir DIR] [--clean]
    .venv/bin/python bench/hfcopy.py --report      # the last run's table again

1. Generates (once; reused while the `done` markers match) a release-shaped sample
   of GB gigabytes in DIR/release (bench/sample.py via outofcache.build_release;
   validation: 1 image in 27, as in the release) and its parquet copy in DIR/hf
   (bench/hfgen.py: rows shuffled across files of ~MB each, row groups of 100 rows,
   DIR/hf/synset_labels.txt = the release's, so both routes use the same labels).
2. Each phase runs in its own memory cgroup limited to --mem-gb (default: a third of
   the copy), so the page cache it may keep is bounded and the copy is bigger than
   its memory, and in a blkio cgroup that counts the bytes it makes the disk read
   and write (bench/cgroups.py; fallback: /proc/PID/io of its processes).  Before
   each phase: sync, and every file under DIR dropped from the page cache.
3. Phases, one after the other on the same disk: the tar route
   (`./build.sh DIR/release -o DIR/out-tar -j W`), the parquet route
   (`./build.sh DIR/hf -o DIR/out-hf -j W`: the spool pass, from 'unpacking N files'
   to 'unpacked N files in S s', then the write), the copy floor (bench/floor.py
   over the release: every member read once, the same bytes written into the same
   1,152 files, fsync each).  The shards of the two routes are compared by SHA-256
   (the tar route's output is deleted before the parquet route runs, to save disk).
4. Prints a table and writes bench/out/hfcopy.json.
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)

from bench import cgroups, hfgen, outofcache, sample as bsample  # noqa: E402
from bench.run import PY, _when, run_tree, shard_sizes  # noqa: E402

RESULT = os.path.join(BENCH, "out", "hfcopy.json")
VAL_SHARE = 50000 / 1331167          # the release's validation share
DISK_FACTOR = 4.5                    # release + copy + output + spool, and spare


def val_count(gb):
    return max(100, min(outofcache.VAL,
                        int(round(gb * 1e9 / outofcache.IMAGE_BYTES * VAL_SHARE))))


def digests(out):
    """{relative path: SHA-256} of the shard files under out/{train,validation}."""
    got = {}
    for sub in ("train", "validation"):
        for name in sorted(os.listdir(os.path.join(out, sub))):
            if name.startswith("."):
                continue
            h = hashlib.sha256()
            with open(os.path.join(out, sub, name), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            got[sub + "/" + name] = h.hexdigest()
    return got


class Failed(Exception):
    """A phase's command failed: its last error line (and the OOM kills, if any)."""


def measure(name, cmd, limit, where, watch=()):
    """Run cmd in a fresh cgroup pair; run_tree's result plus io (sampler) and the
    memory group's figures; the sampler stays under "_sampler" for stage windows."""
    group = "ilsvrc-bench-%d-%s" % (os.getpid(), name)
    with cgroups.Phase(group, limit, where) as g:
        sampler, said = cgroups.Sampler(g), io.StringIO()
        sampler.start()
        stderr, sys.stderr = sys.stderr, said    # run_tree prints the lines of a failure
        try:
            res = run_tree(g.wrap(cmd), watch)
        except SystemExit:
            kills = g.oom_kills()
            lines = said.getvalue().splitlines() or ["(no output)"]
            last = ([l for l in lines if "error" in l] or lines)[-1]
            raise Failed(last + ("" if not kills else
                                 " [%d process(es) killed at the %.2f GB memory limit: "
                                 "raise --mem-gb]" % (kills, limit / 1e9)))
        finally:
            sys.stderr = stderr
            sys.stderr.write(said.getvalue())
            sampler.stop()
        res.update(io=sampler.window(), cgroup=g.memory(), blkio=bool(g.blk),
                   _sampler=sampler)
    return res


def _stage(res, name, t0, t1):
    if t0 is not None and t1 is not None:
        res.setdefault("stages", {})[name] = dict(res["_sampler"].window(t0, t1),
                                                  wall=t1 - t0)


def route(a, src, out, limit):
    """One conversion (./build.sh src -o out), its stages timed from its output."""
    res = measure(os.path.basename(out), ["./build.sh", src, "-o", out, "-j",
                                          str(a.workers)], limit, a.dir,
                  [os.path.join(out, "train"), os.path.join(out, "validation")])
    res.update(outofcache.stages(res))
    lines = res.pop("lines")
    start = next((t for t, l in lines if l.startswith("unpacking ")), None)
    done = [(t, l) for t, l in lines if l.startswith("unpacked ")]
    if start is not None and done:
        _stage(res, "spool pass", start, done[0][0])
        res["unpacked_line"] = done[0][1]
    planned = _when(lines, "validation images ->")
    _stage(res, "write stage", planned, planned + res["write_s"] if planned else None)
    res["tail"] = [l for _, l in lines if l.startswith(("verified:", "spool:"))]
    res.pop("_sampler")
    return res


def floor(a, release, sizes_file, limit):
    flo = os.path.join(a.dir, "floor")
    res = measure("floor", [PY, os.path.join(BENCH, "floor.py"), release, flo,
                            str(a.workers), sizes_file], limit, a.dir)
    res.update(json.loads(res.pop("lines")[-1][1]))
    res.pop("_sampler")
    shutil.rmtree(flo)
    return res


def prepare(a):
    """Generate (or reuse) the release and its copy; the sizes."""
    release, hf = os.path.join(a.dir, "release"), os.path.join(a.dir, "hf")
    per_class, build_s = outofcache.build_release(release, a.gb, val_count(a.gb))
    files = hfgen.write_copy(release, hf, a.file_mb, a.seed)
    copy_bytes = sum(os.path.getsize(p) for p in outofcache.files_under(
        os.path.join(hf, "data")))
    with open(os.path.join(release, "done")) as f:
        params = json.load(f)
    return {"release_bytes": bsample.release_bytes(release), "copy_bytes": copy_bytes, "files": files,
            "images": params["classes"] * params["per_class"] + params["val"],
            "val_images": params["val"], "release_s": build_s}


def check_disk(a):
    have = shutil.disk_usage(a.dir).free + sum(
        os.path.getsize(p) for p in outofcache.files_under(a.dir))
    need = DISK_FACTOR * a.gb * 1e9
    if have < need:
        raise SystemExit("hfcopy: needs %.0f GB of disk under %s (%.1f x the %.1f GB "
                         "copy: release, copy, one output, the spool); %.0f GB available."
                         " Use --gb or --dir." % (need / 1e9, a.dir, DISK_FACTOR, a.gb,
                                                  have / 1e9))


def run_phases(a, r, limit):
    release, hf = os.path.join(a.dir, "release"), os.path.join(a.dir, "hf")
    out_tar, out_hf = os.path.join(a.dir, "out-tar"), os.path.join(a.dir, "out-hf")
    sizes_file = os.path.join(a.dir, "shard-sizes.json")
    r["resident_before"] = {"tar": outofcache.evict(a.dir)}
    r["tar"] = route(a, release, out_tar, limit)
    _said("tar route", r["tar"])
    with open(sizes_file, "w") as f:
        json.dump(shard_sizes(out_tar), f)
    want = digests(out_tar)
    shutil.rmtree(out_tar)
    r["resident_before"]["hf"] = outofcache.evict(a.dir)
    try:
        r["hf"] = route(a, hf, out_hf, limit)
    except Failed as err:
        r["hf"] = {"failed": str(err)}
        print("parquet route FAILED: %s" % err)
    else:
        _said("parquet route", r["hf"])
        compare(r, want, digests(out_hf))
    shutil.rmtree(out_hf, ignore_errors=True)
    r["resident_before"]["floor"] = outofcache.evict(a.dir)
    r["floor"] = floor(a, release, sizes_file, limit)
    _said("copy floor", r["floor"])
    os.remove(sizes_file)


def compare(r, want, got):
    r["shards"] = len(want)
    r["identical"] = got == want
    r["differ"] = sorted(set(got) ^ set(want) | {k for k in got if got[k] != want.get(k)})
    print("shards: %d files; parquet route vs tar route: %s" % (
        len(want), "byte-identical" if r["identical"] else
        "DIFFERENT (%d files, e.g. %s)" % (len(r["differ"]), r["differ"][:3])))


def _said(name, res):
    print("%s: %.1f s, read %.2f GB, written %.2f GB" % (
        name, res["wall"], res["io"]["read"] / 1e9, res["io"]["written"] / 1e9))
    sys.stdout.flush()


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench/hfcopy.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gb", type=float, default=6.0, help="copy size in GB (default 6)")
    p.add_argument("--mem-gb", type=float, default=None,
                   help="memory limit of each phase (default: a third of --gb)")
    p.add_argument("-j", "--workers", type=int, default=None,
                   help="workers of each phase (default: one per core)")
    p.add_argument("--file-mb", type=int, default=256, metavar="MB",
                   help="size of each parquet file in MB (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle of the copy's "
                   "rows (default 0)")
    p.add_argument("--dir", default=os.path.join(BENCH, "out", "hfcopy"),
                   help="where the release, its copy and the outputs go (default: "
                   "bench/out/hfcopy)")
    p.add_argument("--clean", action="store_true",
                   help="delete the generated release and copy at the end")
    p.add_argument("--report", action="store_true", help="print the last result again")
    a = p.parse_args(argv)
    if a.report:
        return show_last()
    why = cgroups.available()
    if why:
        raise SystemExit("hfcopy: " + why)
    from ilsvrc import pool
    a.workers = a.workers or pool.default_workers()
    limit = int((a.mem_gb or a.gb / 3) * 1e9)
    os.makedirs(a.dir, exist_ok=True)
    for d in ("out-tar", "out-hf", "floor"):
        shutil.rmtree(os.path.join(a.dir, d), ignore_errors=True)
    check_disk(a)
    r = {"gb": a.gb, "workers": a.workers, "limit": limit, "file_mb": a.file_mb,
         "cores": pool.default_workers(), "memory": outofcache.mem_total()}
    r.update(prepare(a))
    print("release %.2f GB, parquet copy %.2f GB (%s), %d images; memory limit per "
          "phase %.2f GB (copy = %.1f x limit)" % (
              r["release_bytes"] / 1e9, r["copy_bytes"] / 1e9, r["files"], r["images"],
              limit / 1e9, r["copy_bytes"] / limit))
    sys.stdout.flush()
    try:
        run_phases(a, r, limit)
    except Failed as err:
        raise SystemExit("hfcopy: a phase failed: %s" % err)
    if a.clean:
        shutil.rmtree(a.dir)
    os.makedirs(os.path.dirname(RESULT), exist_ok=True)
    with open(RESULT, "w") as f:
        json.dump(r, f, indent=1)
    report(r)
    return 0


def show_last():
    try:
        with open(RESULT) as f:
            r = json.load(f)
    except (OSError, ValueError):
        print("hfcopy: no result yet (%s): run bench/hfcopy.py first"
              % os.path.relpath(RESULT, REPO))
        return 1
    report(r)
    return 0


def _row(name, res, floor_wall, rss=True):
    io = res["io"] if "io" in res else res
    mem = ("%.0f (%.0f)" % (res["peak_rss"] / 2**20, res["peak_pss"] / 2**20)
           if rss else "")
    blk, cpu = io.get("written_blkio"), io.get("cpu_s")
    print("| %s | %.1f | %s | %.2f | %.2f%s | %s | %.0f / %.0f | %.2f |" % (
        name, res["wall"], "" if cpu is None else "%.0f" % cpu, io["read"] / 1e9,
        io["written"] / 1e9, "" if blk is None else " (%.2f)" % (blk / 1e9), mem,
        io["peak_anon"] / 2**20, io["peak_cache"] / 2**20, res["wall"] / floor_wall))


def report(r):
    fw = r["floor"]["wall"]
    print()
    print("| phase | wall s | CPU s | read GB | written GB (blkio) | peak RSS (PSS) MiB | "
          "cgroup peak anon / cache MiB | wall / floor |")
    print("|---|---|---|---|---|---|---|---|")
    for key, name in (("tar", "tar route"), ("hf", "parquet route")):
        if "failed" in r[key]:
            print("| %s, %d workers | failed: %s | | | | | | |" % (name, r["workers"],
                                                                r[key]["failed"]))
            continue
        _row("%s, %d workers" % (name, r["workers"]), r[key], fw)
        for stage, res in r[key].get("stages", {}).items():
            _row("· %s" % stage, res, fw, rss=False)
    _row("copy floor (bench/floor.py)", r["floor"], fw)
    print()
    print("copy: %.2f GB of parquet (%s files), release %.2f GB of tars, %d images; "
          "memory limit %.2f GB per phase; %d workers, %d cores" % (
              r["copy_bytes"] / 1e9, r["files"], r["release_bytes"] / 1e9, r["images"],
              r["limit"] / 1e9, r["workers"], r["cores"]))
    if "shards" in r:
        print("shards: %d, parquet route vs tar route: %s" % (
            r["shards"], "byte-identical" if r["identical"] else
            "DIFFERENT: %s" % r["differ"][:5]))
    hf = r["hf"]
    if "spool pass" in hf.get("stages", {}):
        sp = hf["stages"]["spool pass"]
        print("spool pass: %.0f MB/s of parquet (%s)" % (
            r["copy_bytes"] / 1e6 / sp["wall"], hf.get("unpacked_line", "")))
    for key in [k for k in ("tar", "hf", "floor") if "failed" not in r[k]]:
        x = r[key]
        print("%s: CPU %.0f s, load %.1f/%.1f, read by %s, /proc io read %.2f GB, "
              "cgroup peak %.0f MiB, page cache resident before: %s bytes" % (
                  key, x["cpu_s"], x["load"], x["load_after"], x["io"]["read_source"],
                  x["io"]["proc_read"] / 1e9, x["cgroup"]["peak"] / 2**20,
                  r["resident_before"].get(key)))
    print("(read: disk reads by the phase's processes (blkio); written: bytes they "
          "dirtied (/proc/PID/io), in brackets what blkio saw them write themselves "
          "(fsync), the rest was written back by the kernel's flusher)")


if __name__ == "__main__":
    sys.exit(main())
