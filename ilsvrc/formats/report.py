"""The run report: what a conversion or `./verify.sh` did, gathered into one dict
(tool and commit, command line, source, counts per split and per class against the
ILSVRC2012 contract, shard sizes, time per stage, how the records were checked, a
contact sheet read back from the shards) and written beside the output as
report.json and a self-contained report.html (verify: verify-report.*), each
atomically.  A report is written only for a command that began one (`begin`: the
front ends build.sh, the slim driver and verify.sh) and never fails a run: a report
that cannot be written is one warning line."""

import datetime
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter

import ilsvrc
from ilsvrc import fsutil, shipped, storage
from ilsvrc.formats import report_classes as classes, report_html, report_sheet
from ilsvrc.storage import cache

NAMES = {"conversion": "report", "verify": "verify-report"}
REPORT_FILES = tuple(n + ext for n in NAMES.values() for ext in (".json", ".html"))
# The ILSVRC2012 release's split sizes (registry.FULL_COUNTS).
FULL_COUNTS = {"train": 1281167, "validation": 50000}
GIT_TIMEOUT = 5


class _Run:
    """One command's report context: how it was started, what the engine noted on
    the way (the source, the validation labels) and when each stage ended."""

    def __init__(self, prog, argv, options, out):
        self.prog, self.argv, self.out = prog, [str(a) for a in argv], _place(out)
        self.options = dict(sorted(vars(options).items())) if options is not None else {}
        self.started, self.started_at = time.monotonic(), _now()
        self.notes, self.marks, self.written = {}, [], None


_RUN = None


def begin(prog, argv, options=None, out=None):
    """Start the report of this command (a front end, after parsing `argv` into
    `options`): conversions into `out` and ./verify.sh get a report."""
    global _RUN
    _RUN = _Run(prog, argv, options, out)


def note(**facts):
    """Record facts the report shows (source=discover.Source, labels=path)."""
    if _RUN is not None:
        _RUN.notes.update(facts)


def mark(stage):
    """Stage `stage` of this command ends now."""
    if _RUN is not None:
        _RUN.marks.append((stage, time.monotonic()))


def say(stream, before=None):
    """The line naming the report this command wrote (nothing when none was), after
    what `before` (another stream) holds so far."""
    if before is not None:
        before.flush()
    if _RUN is not None and _RUN.written:
        html, data, remote = _RUN.written
        stream.write("report: %s (data: %s%s)\n" % (
            html, os.path.basename(data), "; a gs:// output's report is kept beside "
            "the local source index" if remote else ""))
        stream.flush()


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _place(out):
    if out is None:
        return None
    return out.rstrip("/") if storage.is_remote(out) else os.path.abspath(out)


# --------------------------------------------------------------------------- entry

def after_conversion(fmt, out_dir, splits, stats, how, task=None, log=sys.stderr,
                     listings=None, options=None):
    """The report of a whole conversion into `out_dir` (not of one task's share);
    `how`: how the records were checked (None: not verified)."""
    run = _RUN
    if run is None or task is not None or _place(out_dir) != run.out:
        return
    _guarded(log, lambda: _conversion(run, fmt, out_dir, splits, stats, how,
                                      listings, options or {}))


def after_verify(fmt, out_dir, shards, counts, problems, warnings, splits, extras,
                 log=sys.stderr):
    """The report of ./verify.sh: what it found, problems or OK."""
    run = _RUN
    if run is None:
        return
    _guarded(log, lambda: _verify(run, fmt, out_dir, shards, counts, problems,
                                  warnings, splits, extras))


def _guarded(log, make):
    try:
        make()
    except Exception as err:   # the report never turns a run into a failure
        line = " ".join(str(err).split()) or type(err).__name__
        log.write("warning: the run report was not written: %s\n" % line)


def _conversion(run, fmt, out_dir, splits, stats, how, listings, options):
    now = time.monotonic()
    custom = bool(options.get("allow_custom"))
    data = _head(run, "conversion", fmt, out_dir, custom)
    shards = _plan_shards(splits)
    per_class, labels = classes.class_counts(splits, listings, options)
    data["splits"] = _splits(fmt, {s.prefix: s.count for s in splits}, shards)
    for s in splits:
        data["splits"][s.prefix]["records_per_shard"] = _spread(
            [end - start for start, end in s.ranges])
    kept = Counter(s.prefix for s, _ in stats.get("kept", ()))
    for prefix, info in data["splits"].items():
        info["shards_kept"] = kept[prefix]
        info["shards_written"] = info["shards"] - kept[prefix]
    labels = classes.plan_labels(splits, per_class,
                                 labels or classes.pairs_labels(stats.get("pairs")))
    data["classes"] = classes.table(per_class, labels, custom)
    data["timing"] = _timing(run, now, ("index", "plan", "write"), "verify",
                             stats.get("images", 0), stats.get("bytes_written", 0),
                             sum(s.count for s in splits))
    data["checks"] = {"verified": how is not None, "image_check": run.options.get(
        "check"), "how": how or "not verified (--no-verify): run ./verify.sh"}
    data["status"] = "OK"
    _write(run, "conversion", out_dir, data, shards)


def _verify(run, fmt, out_dir, shards, counts, problems, warnings, splits, extras):
    now = time.monotonic()
    custom = bool(run.options.get("allow_custom_classes"))
    data = _head(run, "verify", fmt, out_dir, custom)
    plans = {s.prefix: s for s in splits or ()}
    found = {}
    for prefix, k, path in shards:
        span = plans[prefix].ranges[k] if prefix in plans else None
        found.setdefault(prefix, []).append(report_sheet.Shard(
            prefix, k, path, _size(path), span[1] - span[0] if span else None))
    data["splits"] = _splits(fmt, counts, found)
    if splits:
        per_class, labels = classes.class_counts(splits)
        data["classes"] = classes.table(per_class, labels, custom)
    else:
        data["classes"] = {"counted": False, "why": "per-class counts come from the "
                           "plan: run ./verify.sh with --source DIR (the conversion's "
                           "report.json has them too)"}
    data["timing"] = _timing(run, now, ("plan",), "re-read", sum(counts.values()),
                             sum(s.size for v in found.values() for s in v),
                             sum(counts.values()))
    data["checks"] = {"verified": True, "how": _verify_how(run.options, bool(splits)),
                      "extras": [line for line, _ in extras]}
    data["problems"], data["warnings"] = list(problems), list(warnings)
    data["status"] = "problems" if problems else "OK"
    _write(run, "verify", out_dir, data, found)


def _verify_how(options, planned):
    how = ("every shard re-read from disk: shard names and count, framing and both "
           "CRC32C of every record, the format's feature keys and kinds, labels "
           "against the ILSVRC2012 contract, records per split")
    if planned:
        how += ("; every record against the plan rebuilt from %s (each source image "
                "once, with its label%s)" % (options.get("source"), "; image bytes not "
                "compared: --no-image-bytes" if options.get("no_image_bytes") else
                ", byte for byte with what the source gives"))
    return how


# --------------------------------------------------------------------------- parts

def _head(run, kind, fmt, out_dir, custom):
    source = run.notes.get("source")
    return {
        "report": "imagenet-prep run report", "kind": kind, "created": _now(),
        "started": run.started_at, "tool": tool(),
        "command": {"prog": run.prog, "argv": run.argv,
                    "line": shlex.join([run.prog] + run.argv), "options": run.options},
        "format": {"name": fmt.name, "features": sorted(fmt.schema),
                   "layout": [{"directory": sub or ".", "prefix": prefix,
                               "shards": num} for sub, prefix, num in fmt.layout]},
        "output": out_dir,
        "source": {"directory": getattr(source, "root", None),
                   "kind": getattr(source, "kind", None),
                   "validation_labels": run.notes.get("labels")},
        "custom_classes": custom,
    }


def tool():
    """The tool's version and the checkout's git commit ("unknown" outside git)."""
    commit, dirty = "unknown", None
    out = _git("rev-parse", "HEAD")
    if out and len(out) == 40:
        commit = out
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status)
    return {"name": "imagenet-prep", "version": ilsvrc.__version__, "commit": commit,
            "modified": dirty, "python": platform.python_version(),
            "host": socket.gethostname(), "platform": platform.platform()}


def _git(*args):
    try:
        r = subprocess.run(["git", "-C", shipped.REPO] + list(args), capture_output=True,
                           text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _plan_shards(splits):
    """{prefix: [Shard]} of every shard of the plan, with its size where it is."""
    out = {}
    for s in splits:
        sizes = {}
        if storage.is_remote(s.out_dir):
            prefix = storage.join(s.out_dir, s.prefix + "-")
            sizes = {i.path: i.size for i in storage.store_for(prefix).list(prefix)}
        out[s.prefix] = [report_sheet.Shard(
            s.prefix, k, s.path(k), sizes.get(s.path(k), 0) if sizes else
            _size(s.path(k)), end - start) for k, (start, end) in enumerate(s.ranges)]
    return out


def _spread(values):
    values = sorted(values)
    if not values:
        return None
    return {"min": values[0], "median": statistics.median_low(values),
            "max": values[-1], "total": sum(values)}


def _splits(fmt, counts, shards):
    """Per split: records, against the release's, and the shards' sizes."""
    out = {}
    for _, prefix, num in fmt.layout:
        mine = shards.get(prefix, [])
        sizes = [s.size for s in mine]
        known = [s.records for s in mine if s.records is not None]
        out[prefix] = {
            "records": counts.get(prefix, 0), "release": FULL_COUNTS.get(prefix),
            "shards": num, "shards_present": len(mine),
            "nonempty_shards": sum(1 for n in sizes if n),
            "shard_bytes": _spread(sizes),
            "records_per_shard": _spread(known) if len(known) == len(mine) else None}
    return out


def _timing(run, now, stages, last, images, nbytes, records):
    """Seconds per stage (each from the end of the one before, the first from the
    command's start; `last` ends now) and the throughput of the busy stage (write,
    or verify's re-read): `images` and `nbytes` over its seconds."""
    ends = dict(run.marks)
    out, before = [], run.started
    for stage in stages:
        if stage in ends:
            out.append({"stage": stage, "seconds": round(ends[stage] - before, 3)})
            before = ends[stage]
    out.append({"stage": last, "seconds": round(now - before, 3)})
    busy = "write" if "write" in stages else last
    spent = next((s["seconds"] for s in out if s["stage"] == busy), None)
    total = now - run.started
    return {"stages": out, "total_seconds": round(total, 3), "busy_stage": busy,
            "images": images, "bytes": nbytes,
            "images_per_second": round(images / spent, 1) if spent else None,
            "mb_per_second": round(nbytes / 1e6 / spent, 3) if spent else None,
            "records_per_second_overall": round(records / total, 1) if total else None}


# --------------------------------------------------------------------------- write

def where(kind, out_dir):
    """(html path, json path, remote): beside a local output; for a gs:// output,
    under the local index directory (reports/<bucket>/<prefix>/)."""
    remote = storage.is_remote(out_dir)
    d = out_dir
    if remote:
        d = os.path.join(cache.index_dir(), "reports", *[p for p in storage.split_path(
            out_dir.rstrip("/")) if p])
    base = os.path.join(d if remote else os.path.abspath(d), NAMES[kind])
    return base + ".html", base + ".json", remote


def _write(run, kind, out_dir, data, shards):
    html_path, json_path, remote = where(kind, out_dir)
    sheet = report_sheet.draw(shards, classes.class_texts())
    data["contact_sheet"] = report_sheet.summary(sheet)
    data["files"] = {"html": html_path, "json": json_path}
    page = report_html.render(data, sheet)
    os.makedirs(os.path.dirname(html_path), exist_ok=True)
    try:
        fsutil.atomic_write(json_path, json.dumps(data, indent=1, default=str) + "\n")
        fsutil.atomic_write(html_path, page)
    except BaseException:   # no pair of files from two runs
        for path in (json_path, html_path):
            if os.path.isfile(path):
                fsutil.discard(path)
        raise
    run.written = (html_path, json_path, remote)
