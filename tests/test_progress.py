"""The progress printer (ilsvrc/progress.py) and the steps that use it: the ETA is
never a guess from a first line, bytes print as MB/GB, a run whose images are done
says how many shards are still to go, and indexing the tars, --extract and the
slim box CSV print progress lines."""

import io
import os
import re
import time

import pytest

from conftest import run_cmd
from ilsvrc import pool, progress
from ilsvrc.formats import bbox, extract
from ilsvrc.progress import Progress
from ilsvrc.sources import tarindex


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _printer(total, **kw):
    clock, out = Clock(), io.StringIO()
    return Progress(total, "writing", stream=out, every=0, clock=clock, **kw), clock, out


def _last(out):
    return out.getvalue().splitlines()[-1]


def test_no_eta_on_a_first_line_from_start_up():
    # a 17 s job: the first result comes after 2 s of start-up, 1 image of 42
    p, clock, out = _printer(42)
    clock.now += 2.0
    p.update(1, 100)
    assert "ETA" not in _last(out)
    # 5 % done: now it can be estimated, from the rate since the first image
    clock.now += 1.0
    p.update(2, 100)
    left = p.eta()
    assert left is not None and 10 < left < 60
    assert re.search(r"ETA 0m\d\ds$", _last(out))


def test_no_eta_from_a_long_start_up_or_a_stall():
    # 11 s of start-up on a busy machine, then the first 3 of 1152 shards, then a
    # 15 s stall (a worker loading what it needs): the rate so far would say hours
    # for what takes seconds
    p, clock, out = _printer(1152)
    clock.now += 11.0
    for _ in range(3):
        clock.now += 0.1
        p.update(1)
    assert "ETA" not in _last(out)
    clock.now += 15.0
    p.update(1)
    assert "ETA" not in _last(out)
    clock.now += 1.0
    p.update(100)
    assert p.eta() < 300                     # minutes, not hours


def test_eta_of_a_long_step_after_one_percent_and_thirty_seconds():
    p, clock, out = _printer(100000)
    clock.now += 30.0
    p.update(500)
    clock.now += 29.0
    p.update(500)
    assert "ETA" not in _last(out)           # 1 %, but not 30 s since the first
    clock.now += 2.0
    p.update(100)
    assert "ETA" in _last(out)
    assert abs(p.eta() - (100000 - 1100) / (600 / 31.0)) < 1
    clock.now += 100.0
    p.update(0)
    assert progress.eta(999, 100000, 1000.0, 1.0) is None   # under 1 %: no guess
    assert progress.eta(0, 10, 100.0, 1.0) is None          # nothing done
    assert progress.eta(10, 10, 0.0, None) == 0.0           # all done
    assert progress.eta(0, 0, 0.0, None) == 0.0             # nothing to do


def test_eta_uses_the_rate_of_the_last_minute():
    p, clock, _ = _printer(10000)
    for _ in range(120):             # two minutes at 1 per second...
        clock.now += 1.0
        p.update(1)
    for _ in range(60):              # ...then a minute at 10 per second
        clock.now += 1.0
        p.update(10)
    left = p.eta()
    assert abs(left - (10000 - 720) / 10.0) < 60, left


def test_images_done_but_shards_left_is_not_eta_zero():
    p, clock, out = _printer(42, second=(1152, "shards"))
    clock.now += 3.0
    p.update(42, 1000, second=40)
    line = _last(out)
    assert "42/42 images  40/1152 shards" in line and "ETA" not in line
    clock.now += 10.0
    p.update(0, 0, second=300)
    assert p.eta() > 10 and "ETA 0m00s" not in _last(out)
    clock.now += 5.0
    p.update(0, 0, second=812, force=True)
    assert _last(out).endswith("ETA 0m00s")


def test_bytes_print_as_megabytes_and_gigabytes():
    p, clock, out = _printer(6744924160, unit="bytes")
    clock.now += 10.0
    p.update(10 ** 9)
    clock.now += 10.0
    p.update(10 ** 9)
    line = _last(out)
    assert line.startswith("writing: 2.00/6.74 GB  100.0 MB/s  elapsed 0m20s  ETA ")
    assert progress.fmt_bytes(12345678) == "12.3 MB"


def test_lines_come_every_interval_and_the_environment_sets_it(monkeypatch):
    clock, out = Clock(), io.StringIO()
    monkeypatch.setenv(progress.EVERY_ENV, "5")
    p = Progress(100, "x", stream=out, clock=clock)
    assert p.every == 5.0
    for _ in range(20):
        clock.now += 1.0
        p.update(1)
    assert len(out.getvalue().splitlines()) == 4
    monkeypatch.delenv(progress.EVERY_ENV)
    assert progress.interval(False) == 15.0 and progress.interval(True) == 1.0


def test_quick_step_says_nothing_unless_asked():
    clock, out = Clock(), io.StringIO()
    p = Progress(10, "indexing", stream=out, every=15, clock=clock)
    p.update(10)
    p.finish(always=False)
    assert out.getvalue() == ""
    p.finish()
    assert out.getvalue().startswith("indexing: 10/10 images")


def test_a_long_wait_at_the_end_is_said():
    p, _, out = _printer(1)
    with p.waiting("3 shards still being flushed to disk", after=0.05):
        time.sleep(0.3)
    with p.waiting("nothing", after=5):
        pass
    lines = out.getvalue().splitlines()
    assert lines == ["writing: finishing: 3 shards still being flushed to disk",
                     "writing: finished after 0m00s more"]


# --------------------------------------------------------------------------- steps

@pytest.fixture
def every_line(monkeypatch):
    monkeypatch.setenv(progress.EVERY_ENV, "0")


def test_indexing_the_class_tars_prints_progress(every_line, sample_release, capsys):
    path = os.path.join(sample_release[0], tarindex.TRAIN_TAR)
    with pool.Pool(0) as runner:
        listing = tarindex.index_train_tar(path, runner)
    assert len(listing)
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines()
             if x.startswith("indexing %s: " % tarindex.TRAIN_TAR)]
    assert lines and "class tars" in lines[-1] and lines[-1].endswith("ETA 0m00s")
    classes = len(listing.group_names)
    assert "%d/%d class tars" % (classes, classes) in lines[-1]


def test_extract_prints_progress(every_line, sample_release, tmp_path):
    raw = sample_release[0]
    from ilsvrc.formats import official
    from ilsvrc.sources import discover
    log = io.StringIO()
    with pool.Pool(0) as runner:
        listings, _ = official.read_source(discover.as_source(raw), runner)
        extract.extract(*listings, str(tmp_path), None, runner, log=log)
    n = sum(len(x) for x in listings)
    lines = [x for x in log.getvalue().splitlines() if x.startswith("extracting: ")]
    assert len(lines) >= 2 and "%d/%d images" % (n, n) in lines[-1]
    assert "ETA 0m00s" in lines[-1]


def test_box_csv_prints_progress_while_reading_the_archive(every_line, slim_release,
                                                           tmp_path):
    log = io.StringIO()
    bbox.write_csv(os.path.join(slim_release[0], bbox.ARCHIVE), str(tmp_path / "b.csv"),
                   log=log)
    lines = [x for x in log.getvalue().splitlines()
             if x.startswith("bounding boxes: reading ")]
    assert len(lines) >= 2 and "annotation files" in lines[-1]
    assert re.search(r"\d+\.\d/\d+\.\d MB", lines[-1]) and "ETA 0m00s" in lines[-1]


def test_build_sh_progress_counts_shards(release_copy, monkeypatch):
    raw, _ = release_copy
    monkeypatch.setenv(progress.EVERY_ENV, "0.5")
    r = run_cmd(["./build.sh", raw, "-j", "0", "--no-verify"])
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("converting: ")]
    counts = [x for x in lines if " images  " in x]
    assert counts and all("/1152 shards" in x for x in counts), lines
    assert "42/42 images  1152/1152 shards" in counts[-1]
    # the first line is no guess from start-up; the last is all done
    assert "ETA" not in counts[0] or counts[0] == counts[-1]
    assert counts[-1].endswith("ETA 0m00s")
