"""The source index file: round trip, stale and damaged indexes, relative paths."""

import os

import pytest

from ilsvrc import pool
from ilsvrc.sources import cached, containers, discover, indexfile, listing, tarindex


def _columns(lst):
    return (lst.split, list(lst.names), list(lst.group_names), list(lst.group),
            list(lst.container), list(lst.offset), list(lst.size),
            [str(c) for c in lst.containers], [type(c) for c in lst.containers],
            lst.inner_tars, lst.root, lst.files_flat)


def _walk(found):
    with pool.Pool(0) as runner:
        return discover.list_source(found, runner)


def test_round_trip_of_the_release_tars(release_copy, tmp_path, capsys):
    d, _ = release_copy
    found = discover.find_source(d)
    path = str(tmp_path / "src.index")
    with pool.Pool(0) as runner:
        cached.write_index(found, runner, path)
        loaded = cached.listings(found, runner, path)
    walked = _walk(found)
    assert [_columns(x) for x in loaded] == [_columns(x) for x in walked]
    assert len(loaded[0]) > 0 and loaded[0].inner_tars
    assert "read %d images" % sum(map(len, walked)) in capsys.readouterr().err.replace(",", "")


def test_round_trip_of_every_column_kind(tmp_path):
    a = listing.Listing("train")
    a.containers = [containers.ZipMembers(str(tmp_path / "k.zip"))]
    a.add("x\u00e9.JPEG", "n1", 0, 100, 7)
    a.add("odd\nname\udcff.JPEG", "n2", 0, 90, 0)      # offsets need not increase
    a.add("whole.JPEG", "", -1, 0, -1)
    b = listing.Listing("validation")
    b.root, b.files_flat = str(tmp_path / "tree"), True
    b.add("v.JPEG", "n1")
    stats = {str(tmp_path / "k.zip"): [5, 6]}
    data = indexfile.dumps([a, b], stats, {"kind": "zip"}, base=str(tmp_path))
    moved = "/elsewhere/mount"
    got = indexfile.loads(data, {moved + "/k.zip": [5, 6]}, {"kind": "zip"}, base=moved)
    assert [str(c) for c in got[0].containers] == [moved + "/k.zip"]
    assert isinstance(got[0].containers[0], containers.ZipMembers)
    assert got[1].root == moved + "/tree"
    assert _columns(got[0])[:7] == _columns(a)[:7]
    assert _columns(got[1])[:7] == _columns(b)[:7]


def _indexed(directory, tmp_path, runner):
    """(found, index path) of the source in `directory`, its index just written."""
    found = discover.find_source(directory)
    path = str(tmp_path / "src.index")
    cached.write_index(found, runner, path)
    return found, path


def test_a_changed_tar_is_detected(release_copy, tmp_path):
    d, _ = release_copy
    with pool.Pool(0) as runner:
        found, path = _indexed(d, tmp_path, runner)
        tar = os.path.join(d, tarindex.VAL_TAR)
        st = os.stat(tar)
        os.utime(tar, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
        with pytest.raises(indexfile.StaleIndex) as err:
            cached.listings(found, runner, path)
        msg = str(err.value)
        assert tarindex.VAL_TAR in msg and "stale" in msg and "--index-only" in msg
        assert "\n" not in msg
        with open(tar, "ab") as f:
            f.write(bytes(512))
        with pytest.raises(indexfile.StaleIndex, match="changed size"):
            cached.listings(found, runner, path)


def test_an_index_of_another_source_kind_is_refused(release_copy, tmp_path):
    d, _ = release_copy
    with pool.Pool(0) as runner:
        found, path = _indexed(d, tmp_path, runner)
        os.makedirs(os.path.join(d, "train"))
        os.makedirs(os.path.join(d, "validation"))
        with pytest.raises(indexfile.StaleIndex, match="another source"):
            cached.listings(discover.find_source(d, "tree"), runner, path)


def test_damaged_and_foreign_files(release_copy, tmp_path):
    d, _ = release_copy
    with pool.Pool(0) as runner:
        found, path = _indexed(d, tmp_path, runner)
        data = open(path, "rb").read()
        open(path, "wb").write(data[:-3])
        with pytest.raises(indexfile.BadIndex, match="damaged"):
            cached.listings(found, runner, path)
        open(path, "wb").write(b"hello")
        with pytest.raises(indexfile.BadIndex, match="not an ilsvrc source index"):
            cached.listings(found, runner, path)
        open(path, "wb").write(data.replace(b"INDEX 1\n", b"INDEX 9\n", 1))
        with pytest.raises(indexfile.BadIndex, match="version 9"):
            cached.listings(found, runner, path)


def test_without_an_index_the_source_is_walked(release_copy, tmp_path):
    d, _ = release_copy
    found = discover.find_source(d)
    with pool.Pool(0) as runner:
        got = cached.listings(found, runner, str(tmp_path / "absent.index"))
    assert [_columns(x) for x in got] == [_columns(x) for x in _walk(found)]


def test_tree_index_notices_a_new_file(tmp_path):
    root = tmp_path / "tree"
    for sub in ("train/n01440764", "validation"):
        os.makedirs(root / sub)
    open(root / "train/n01440764/a.JPEG", "wb").close()
    open(root / "validation/ILSVRC2012_val_00000001.JPEG", "wb").close()
    with pool.Pool(0) as runner:
        found, path = _indexed(str(root), tmp_path, runner)
        assert len(cached.listings(found, runner, path)[0]) == 1
        open(root / "train/n01440764/b.JPEG", "wb").close()
        os.utime(root / "train/n01440764", ns=(0, 10 ** 9))
        with pytest.raises(indexfile.StaleIndex, match="n01440764"):
            cached.listings(found, runner, path)


def test_module_command_writes_the_index(sample_release, tmp_path):
    from conftest import python, run_cmd
    d, _ = sample_release
    path = str(tmp_path / "cmd.index")
    r = run_cmd([python(), "-m", "ilsvrc.cli.index", d, "-o", path, "-j", "0"])
    assert r.returncode == 0, r.stderr
    assert "written to %s" % path in r.stderr
    found = discover.find_source(d)
    got = indexfile.load(path, cached.local_stats, None, cached.source_base(found))
    assert sum(map(len, got)) == sum(map(len, _walk(found)))
    r = run_cmd([python(), "-m", "ilsvrc.cli.index", str(tmp_path / "nothing"), "-o", path])
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
