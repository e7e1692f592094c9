"""Release tars published byte-split (NAME.001, NAME.002, ...) are read in place as
one file: the conversions are byte-identical to those of the whole tars, the index
and verify work with them, every bad split is refused in one line, nothing is copied."""

import io
import os
import pickle
import random
import shutil
import tarfile

import pytest

from conftest import REPO, python, run_cmd
from ilsvrc import pool
from ilsvrc.errors import UserError
from ilsvrc.formats import bbox, report
from ilsvrc.sources import containers, discover, parts, tarindex
from slim_helpers import convert as slim_convert, shard_paths

BUILD = os.path.join(REPO, "build.sh")
VERIFY = os.path.join(REPO, "verify.sh")
SLIM = os.path.join(REPO, "slim", "download_and_convert_imagenet.sh")
TRAIN, VAL = tarindex.TRAIN_TAR, tarindex.VAL_TAR


# --------------------------------------------------------------------------- splitting

def split(src, dst_dir, cuts, start=1, width=3):
    """Write `src` to dst_dir as parts cut at the byte offsets `cuts`; their paths."""
    with open(src, "rb") as f:
        data = f.read()
    bounds = [0] + sorted(cuts) + [len(data)]
    assert len(set(bounds)) == len(bounds), "cuts must be distinct, inside the file"
    paths = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        path = os.path.join(dst_dir, "%s.%0*d" % (os.path.basename(src), width, start + k))
        with open(path, "wb") as f:
            f.write(data[a:b])
        paths.append(path)
    return paths


def _members(path):
    with tarfile.open(path) as tar:
        return tar.getmembers()


def train_cuts(path):
    """Awkward places in the training tar: inside the outer header of the 2nd class
    tar, inside the header of an image inside the 3rd class tar, inside the image
    bytes of the 5th class tar: four parts of different sizes."""
    outer = _members(path)
    with tarfile.open(path) as tar:
        third = tarfile.open(fileobj=tar.extractfile(outer[2])).getmembers()
        fifth = tarfile.open(fileobj=tar.extractfile(outer[4])).getmembers()
    in_header = outer[1].offset + 100
    in_inner_header = outer[2].offset_data + third[1].offset + 200
    in_image = outer[4].offset_data + fifth[2].offset_data + fifth[2].size // 2
    return [in_header, in_inner_header, in_image]


def val_cuts(path):
    """Inside a member header and inside an image's bytes."""
    m = _members(path)
    return [m[3].offset + 7, m[7].offset_data + m[7].size // 3]


def make_split(src_dir, dst_dir, train=True, val=True):
    """dst_dir with the release of src_dir, its tars split as asked (train: .001 up,
    width 3; validation: .00 up, width 2); other files linked."""
    os.makedirs(dst_dir, exist_ok=True)
    for name in os.listdir(src_dir):
        src = os.path.join(src_dir, name)
        if name == TRAIN and train:
            split(src, dst_dir, train_cuts(src))
        elif name == VAL and val:
            split(src, dst_dir, val_cuts(src), start=0, width=2)
        elif os.path.isfile(src):
            os.symlink(src, os.path.join(dst_dir, name))
    return dst_dir


@pytest.fixture(scope="module")
def split_dir(sample_release, tmp_path_factory):
    """The sample release with both tars split (read-only)."""
    return make_split(sample_release[0], str(tmp_path_factory.mktemp("split") / "raw"))


@pytest.fixture
def split_copy(split_dir, tmp_path):
    dst = str(tmp_path / "raw")
    shutil.copytree(split_dir, dst, symlinks=True)
    return dst


def all_files(top):
    """{relative path: bytes} of every file under top (of the hidden plan files
    their first line, the plan, not the state of the inputs recorded after it, which
    names inodes and times; not the run's lock files, which name the process, nor
    its report, which says when it ran and how long it took)."""
    out = {}
    for d, _, files in os.walk(top):
        for name in files:
            if name.endswith(".lock") or name in report.REPORT_FILES:
                continue
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                data = f.read()
            if name.endswith(".plan"):
                data = data.split(b"\n", 1)[0]
            out[os.path.relpath(path, top)] = data
    return out


def one_line_error(r, *words):
    """A refusal: non-zero exit, no traceback, the last line the one error line."""
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and r.stderr.rstrip().splitlines()[-1] == errors[0], r.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


# --------------------------------------------------------------------------- the parts

def test_split_writes_the_awkward_boundaries(sample_release, split_dir):
    sizes = [os.path.getsize(os.path.join(split_dir, "%s.%03d" % (TRAIN, k)))
             for k in range(1, 5)]
    assert len(set(sizes)) == 4
    whole = os.path.join(sample_release[0], TRAIN)
    assert sum(sizes) == os.path.getsize(whole)
    found = parts.find(os.path.join(split_dir, VAL))
    assert [os.path.basename(p)[-3:] for p in found] == [".00", ".01", ".02"]


def test_joined_reads_like_the_whole_file(sample_release, split_dir, monkeypatch):
    monkeypatch.setattr(parts, "MAX_OPEN", 2)
    with open(os.path.join(sample_release[0], TRAIN), "rb") as f:
        data = f.read()
    j = parts.Joined(os.path.join(split_dir, TRAIN))
    assert j.size == len(data)
    rng = random.Random(1)
    for _ in range(300):
        off, n = rng.randrange(len(data)), rng.randrange(1, 30000)
        assert j.pread(n, off) == data[off:off + n]
        assert len(j._open) <= 2                 # open parts stay bounded
    j.seek(0)
    assert j.read(1000) == data[:1000] and j.tell() == 1000
    j.seek(-10, 2)
    assert j.read() == data[-10:]
    j.close()
    assert not j._open


def test_slices_container_reads_members_across_parts(sample_release, split_dir):
    whole = containers.Slices(os.path.join(sample_release[0], TRAIN))
    logical = containers.Slices(os.path.join(split_dir, TRAIN))
    back = pickle.loads(pickle.dumps(logical))
    assert back.path == os.path.join(split_dir, TRAIN)
    assert back.identity() == whole.identity()       # the plan fingerprint is the same
    cuts = train_cuts(whole.path)
    with containers.Reader() as r1, containers.Reader() as r2:
        for cut in cuts:                              # members spanning a boundary
            assert r2.read(back, cut - 50, 100) == r1.read(whole, cut - 50, 100)
        assert isinstance(containers._OPEN[back][1], parts.Joined)


def test_a_part_changed_under_a_held_handle_is_reopened(sample_release, split_copy):
    logical = containers.Slices(os.path.join(split_copy, TRAIN))
    last = os.path.join(split_copy, TRAIN + ".004")
    end = logical.identity()[1]
    with containers.Reader() as r:
        r.read(logical, 0, 10)
    first = containers._OPEN[logical][1]
    os.truncate(last, os.path.getsize(last) - 3000)
    with containers.Reader() as r:
        with pytest.raises(UserError) as err:
            r.read(logical, end - 100, 100)       # the old end: cut away now
    assert containers._OPEN[logical][1] is not first
    msg = str(err.value)
    assert last in msg and "incomplete" in msg


def test_short_read_in_a_middle_part_names_it(split_copy):
    logical = containers.Slices(os.path.join(split_copy, TRAIN))
    handle = logical.open()
    middle = os.path.join(split_copy, TRAIN + ".002")
    os.truncate(middle, 1000)
    with pytest.raises(UserError) as err:
        logical.read(handle, handle.starts[1] + 900, 500)
    logical.close(handle)
    assert middle + ": the part ends at byte 1000" in str(err.value)


def test_only_one_tar_split_lists_like_the_whole(sample_release, tmp_path):
    mixed = make_split(sample_release[0], str(tmp_path / "mixed"), train=False)
    assert os.path.islink(os.path.join(mixed, TRAIN))
    got, want = discover.find_source(mixed, "tar"), discover.find_source(sample_release[0])
    with pool.Pool(0) as runner:
        for a, b in zip(discover.list_source(got, runner),
                        discover.list_source(want, runner)):
            assert (a.names, list(a.offset), list(a.size)) == \
                (b.names, list(b.offset), list(b.size))
    assert str(a.containers[0]) == os.path.join(mixed, VAL)


# --------------------------------------------------------------------------- conversions

def test_build_sh_on_parts_is_byte_identical_and_copies_nothing(split_dir, official_sample,
                                                                tmp_path, monkeypatch):
    before = {n: os.stat(os.path.join(split_dir, n)) for n in os.listdir(split_dir)}
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    out = str(tmp_path / "out")
    r = run_cmd([BUILD, split_dir, "-o", out, "-j", "2"])
    assert r.returncode == 0, r.stderr
    got, want = all_files(out), all_files(official_sample)
    assert sorted(got) == sorted(want) and len(want) > 1152
    for name in want:
        assert got[name] == want[name], name
    # nothing copied: the source directory is as it was, no big file appeared anywhere
    # but in the output
    assert {n: os.stat(os.path.join(split_dir, n)) for n in os.listdir(split_dir)} == before
    big = [os.path.join(d, n) for top in (str(tmp), split_dir) for d, _, fs in os.walk(top)
           for n in fs if os.path.getsize(os.path.join(d, n)) > 4096]
    assert sorted(big) == sorted(os.path.join(split_dir, n) for n in before
                                 if ".tar." in n)
    r = run_cmd([VERIFY, "official", out, "--source", split_dir, "-j", "0"])
    assert r.returncode == 0, r.stderr
    assert "exactly once" in r.stdout


def test_index_only_then_conversion_from_the_index(split_copy, official_sample, tmp_path):
    out = str(tmp_path / "out")
    r = run_cmd([BUILD, split_copy, "--source", "tar", "--index-only", "-o", out, "-j", "0"])
    assert r.returncode == 0, r.stderr
    r = run_cmd([python(), "official/imagenet_to_gcs.py", "--raw_data_dir=" + split_copy,
                 "--source=tar", "--local_scratch_dir=" + out, "--nogcs_upload",
                 "--num_workers=2"])
    assert r.returncode == 0, r.stderr
    assert "index: read 42 images" in r.stderr
    for sub in ("train", "validation"):
        got, want = all_files(os.path.join(out, sub)), all_files(
            os.path.join(official_sample, sub))
        assert got == want
    # the index goes stale when a part changes, and when a part is added
    part = os.path.join(split_copy, VAL + ".01")
    st = os.stat(part)
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    one_line_error(run_cmd([BUILD, split_copy, "-o", out, "-j", "0"]),
                   part, "stale", "--index-only")
    r = run_cmd([BUILD, split_copy, "--index-only", "-o", out, "-j", "0"])
    assert r.returncode == 0, r.stderr
    with open(os.path.join(split_copy, VAL + ".03"), "wb") as f:
        f.write(bytes(512))               # padding after the end: still a good tar
    one_line_error(run_cmd([BUILD, split_copy, "-o", out, "-j", "0"]),
                   os.path.join(split_copy, VAL), "changed size", "stale")


def test_slim_driver_on_parts_matches_the_whole_tars(slim_release, tmp_path):
    raw = make_split(slim_release[0], str(tmp_path / "imagenet"))
    assert os.path.islink(os.path.join(raw, bbox.ARCHIVE))
    r = run_cmd([SLIM, raw, "-j", "2", "--no-verify"])
    assert r.returncode == 0, r.stderr
    csv = os.path.join(raw, "raw-data", bbox.CSV_NAME)
    ref = str(tmp_path / "ref")
    slim_convert(ref, source_dir=slim_release[0], bbox_file=csv)
    for prefix, n in (("train", 1024), ("validation", 128)):
        for a, b in zip(shard_paths(raw, prefix, n), shard_paths(ref, prefix, n)):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert fa.read() == fb.read(), a


# --------------------------------------------------------------------------- refusals

def _build(raw, tmp_path):
    return run_cmd([BUILD, raw, "-o", str(tmp_path / "out"), "-j", "0"])


def test_a_gap_is_refused(split_copy, tmp_path):
    os.remove(os.path.join(split_copy, TRAIN + ".002"))
    one_line_error(_build(split_copy, tmp_path), os.path.join(split_copy, TRAIN + ".002"),
                   "is missing", TRAIN + ".003", "Download")
    assert not (tmp_path / "out").exists()


def test_the_whole_tar_and_its_parts_are_refused(split_copy, sample_release, tmp_path):
    shutil.copy(os.path.join(sample_release[0], VAL), split_copy)
    one_line_error(_build(split_copy, tmp_path), os.path.join(split_copy, VAL),
                   VAL + ".00-.02", "keep either")


@pytest.mark.parametrize("name,last,keep", [(TRAIN, ".004", 0.5), (VAL, ".02", 0.6)])
def test_a_truncated_last_part_is_named(split_copy, tmp_path, name, last, keep):
    path = os.path.join(split_copy, name + last)
    os.truncate(path, int(os.path.getsize(path) * keep))
    one_line_error(_build(split_copy, tmp_path), path, "last of the", "incomplete",
                   "truncated")


def test_an_empty_part_is_refused(split_copy, tmp_path):
    path = os.path.join(split_copy, TRAIN + ".003")
    os.truncate(path, 0)
    one_line_error(_build(split_copy, tmp_path), path, "is empty", "Download")


def test_mixed_widths_and_a_missing_first_part(split_copy, tmp_path):
    extra = os.path.join(split_copy, VAL + ".003")
    shutil.copy(os.path.join(split_copy, VAL + ".02"), extra)
    one_line_error(_build(split_copy, tmp_path), extra, "different widths")
    os.remove(extra)
    os.remove(os.path.join(split_copy, VAL + ".00"))
    one_line_error(_build(split_copy, tmp_path), VAL + ".01", "first part",
                   "missing")


def test_a_shortened_middle_part_is_named_with_its_byte(split_copy, tmp_path):
    path = os.path.join(split_copy, VAL + ".01")
    with open(path, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data[:1000] + data[1512:])
        f.truncate()
    line = one_line_error(_build(split_copy, tmp_path), VAL)
    assert " byte " in line and ".tar.0" in line


def test_with_source_tree_broken_parts_do_not_matter(split_copy, tmp_path):
    """Parts are only looked at for the tar source."""
    os.remove(os.path.join(split_copy, TRAIN + ".002"))
    r = run_cmd([BUILD, split_copy, "--source", "tree", "-o", str(tmp_path / "o")])
    one_line_error(r, "missing directory")
