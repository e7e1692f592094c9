"""`./verify.sh --checksums`: the published release files recognised by size and
checksum (the engine on small files with an injected table, the CLI with the
published one)."""

import hashlib
import io
import os
import time

import pytest

from conftest import REPO, run_cmd
from ilsvrc.cli import verify as cli_verify
from ilsvrc.errors import UserError
from ilsvrc.verify import checksums
from ilsvrc.verify.checksums import Published

VERIFY = os.path.join(REPO, "verify.sh")
VAL_BYTES = bytes(range(256)) * 40 + b"validation"
TRAIN_BYTES = b"train" * 3001


def entry(name, data, md5=True, sha=True):
    return Published(name, len(data), hashlib.md5(data).hexdigest() if md5 else None,
                     hashlib.sha256(data).hexdigest() if sha else None)


TABLE = (entry("ILSVRC2012_img_train.tar", TRAIN_BYTES),
         entry("ILSVRC2012_img_val.tar", VAL_BYTES),
         Published("ILSVRC2012_devkit_t12.tar.gz", None,
                   hashlib.md5(b"devkit").hexdigest(), None),
         Published("ILSVRC2012_bbox_train_v2.tar.gz", None, None, None))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


@pytest.fixture
def opened(monkeypatch):
    """Every file the engine opens to read, in order."""
    seen, real = [], checksums._open

    def counting(item):
        seen.append(item.shown)
        return real(item)
    monkeypatch.setattr(checksums, "_open", counting)
    return seen


def run(args, table=TABLE, every=5.0):
    out, log = io.StringIO(), io.StringIO()
    results = checksums.check(args, table, out, log, every)
    return results, out.getvalue(), log.getvalue()


def test_published_files_in_a_directory_are_recognised(tmp_path, opened):
    write(tmp_path / "ILSVRC2012_img_val.tar", VAL_BYTES)
    write(tmp_path / "ILSVRC2012_img_train.tar", TRAIN_BYTES)
    write(tmp_path / "synset_labels.txt", VAL_BYTES)       # not named like a release file
    results, out, _ = run([str(tmp_path)])
    assert [r.verdict for r in results] == ["published", "published"]
    lines = out.splitlines()
    assert lines[0] == "%s: is ILSVRC2012_img_train.tar (15,005 bytes, MD5 and SHA-256 " \
        "match)" % (tmp_path / "ILSVRC2012_img_train.tar")
    assert "is ILSVRC2012_img_val.tar (" in lines[1] and "renamed" not in out
    assert len(opened) == 2 and "synset_labels" not in out
    assert checksums.summary(results) == (True, "OK: 2 files, each a published release "
                                          "file")


def test_a_renamed_file_is_still_recognised(tmp_path):
    path = write(tmp_path / "val-copy.tar", VAL_BYTES)
    results, out, _ = run([path])
    assert out == "%s: is ILSVRC2012_img_val.tar (renamed) (10,250 bytes, MD5 and " \
        "SHA-256 match)\n" % path
    assert results[0].verdict == "published"


def test_split_parts_are_hashed_as_one_file(tmp_path, opened):
    cuts = [0, 5000, 5001, 12000, len(TRAIN_BYTES)]
    for k, (a, b) in enumerate(zip(cuts, cuts[1:])):
        write(tmp_path / ("ILSVRC2012_img_train.tar.%03d" % (k + 1)), TRAIN_BYTES[a:b])
    results, out, _ = run([str(tmp_path)])
    assert len(results) == 1 and opened == [results[0].item.shown]
    assert out.startswith("%s-.004 (4 parts) together are ILSVRC2012_img_train.tar ("
                          % (tmp_path / "ILSVRC2012_img_train.tar.001"))
    # a gap is refused before anything is read
    os.remove(tmp_path / "ILSVRC2012_img_train.tar.002")
    with pytest.raises(UserError, match=r"ILSVRC2012_img_train.tar.002 is missing"):
        run([str(tmp_path)])
    assert len(opened) == 1


def test_a_matching_size_with_another_checksum_is_not_published(tmp_path):
    bad = bytearray(VAL_BYTES)
    bad[5000] ^= 1
    path = write(tmp_path / "ILSVRC2012_img_val.tar", bytes(bad))
    results, out, _ = run([path])
    assert results[0].verdict == "other"
    assert "has the size of ILSVRC2012_img_val.tar but not its checksum (MD5 %s" \
        % hashlib.md5(bad).hexdigest() in out
    # both published checksums must match: a right MD5 with a wrong SHA-256 is not enough
    table = (Published("ILSVRC2012_img_val.tar", len(VAL_BYTES),
                       hashlib.md5(VAL_BYTES).hexdigest(), "0" * 64),)
    path = write(tmp_path / "ILSVRC2012_img_val.tar", VAL_BYTES)
    assert run([path], table)[0][0].verdict == "other"


def test_a_size_that_matches_nothing_is_not_read(tmp_path, opened):
    path = write(tmp_path / "ILSVRC2012_img_val.tar", VAL_BYTES + b"x")
    other = write(tmp_path / "whatever.bin", b"abc")
    results, out, log = run([path, other])
    assert opened == [] and log == ""
    assert out.splitlines() == [
        "%s: not a published release file (size 10,251 bytes; ILSVRC2012_img_val.tar "
        "is 10,250 bytes: an incomplete download?)" % path,
        "%s: not a published release file (size 3 bytes)" % other]
    assert checksums.summary(results)[0] is False


def test_a_file_of_unpublished_size_is_hashed_when_named_so(tmp_path, opened):
    path = write(tmp_path / "ILSVRC2012_devkit_t12.tar.gz", b"devkit")
    box = write(tmp_path / "ILSVRC2012_bbox_train_v2.tar.gz", b"boxes")
    results, out, _ = run([path, box])
    assert opened == [path]
    assert out.splitlines() == [
        "%s: is ILSVRC2012_devkit_t12.tar.gz (6 bytes, MD5 matches)" % path,
        "%s: not checked: no published size or checksum for "
        "ILSVRC2012_bbox_train_v2.tar.gz" % box]
    assert checksums.summary(results) == (
        True, "OK: 1 file, each a published release file; 1 not checked (no published "
        "figures)")
    write(path, b"devkix")
    results, out, _ = run([path])
    assert results[0].verdict == "other" and "has the name of" in out


def test_progress_is_reported_while_hashing(tmp_path, monkeypatch):
    monkeypatch.setattr(checksums, "CHUNK", 4096)
    path = write(tmp_path / "ILSVRC2012_img_val.tar", VAL_BYTES)
    _, _, log = run([path], every=0)
    lines = log.splitlines()
    assert len(lines) == 4          # 3 reads of 4096 bytes at most, then the last line
    assert lines[0].startswith("checksums: ILSVRC2012_img_val.tar  0.0 of 0.0 GB (39%)")
    assert all("MB/s  ETA " in x for x in lines[:3])
    assert lines[-1].startswith("checksums: %s  10,250 bytes read in " % path)


def test_cli_does_not_read_a_big_file_of_no_published_size(tmp_path, opened, capsys):
    big = tmp_path / "ILSVRC2012_img_val.tar"
    with open(big, "wb") as f:
        f.truncate(6744924160 + 1)          # sparse: takes no disk
    write(tmp_path / "ILSVRC2012_img_train.tar", b"x" * 100)
    start = time.monotonic()
    code = cli_verify.main(["--checksums", str(tmp_path)])
    assert time.monotonic() - start < 10 and opened == []
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == [
        "%s: not a published release file (size 100 bytes; ILSVRC2012_img_train.tar is "
        "147,897,477,120 bytes: an incomplete download?)" % (tmp_path / "ILSVRC2012_img_train.tar"),
        "%s: not a published release file (size 6,744,924,161 bytes; "
        "ILSVRC2012_img_val.tar is 6,744,924,160 bytes: an incomplete download?)" % big]
    assert err == "verify.sh: error: 2 of 2 files are not published release files " \
        "(listed above)\n"


def test_cli_exit_status_and_summary_with_a_table(tmp_path, capsys):
    path = write(tmp_path / "copy.tar", VAL_BYTES)
    out, log = io.StringIO(), io.StringIO()
    assert cli_verify.run_checksums(["--checksums", path], out, log, TABLE) == 0
    assert out.getvalue().splitlines()[-1] == "OK: 1 file, each a published release file"
    assert "bytes read in" in log.getvalue()
    other = write(tmp_path / "other.tar", b"?")
    with pytest.raises(UserError, match="1 of 2 files are not published"):
        cli_verify.run_checksums(["--checksums", path, other], out, log, TABLE)


def test_verify_sh_checksums_usage_help_and_refusals(tmp_path):
    r = run_cmd([VERIFY, "--help"])
    assert r.returncode == 0 and "--checksums DIR_OR_FILE" in r.stdout
    r = run_cmd([VERIFY, "--checksums"])
    assert r.returncode == 2 and "DIR_OR_FILE" in r.stderr
    r = run_cmd([VERIFY, "--checksums", str(tmp_path / "nowhere")])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr == "verify.sh: error: %s is not a file or directory\n" % (
        tmp_path / "nowhere")
    r = run_cmd([VERIFY, "--checksums", str(tmp_path)])      # nothing named ILSVRC2012_*
    assert r.returncode == 1 and "holds no release files" in r.stderr
    write(tmp_path / "ILSVRC2012_img_val.tar", b"short")
    r = run_cmd([VERIFY, "--checksums", str(tmp_path)])
    assert r.returncode == 1 and len(r.stdout.splitlines()) == 1
    assert r.stderr.splitlines()[-1].startswith("verify.sh: error: 1 of 1 files")


def test_shard_checks_never_compute_checksums(tmp_path, monkeypatch):
    def refuse(*args, **kw):
        raise AssertionError("checksums computed without --checksums")
    monkeypatch.setattr(checksums, "check", refuse)
    with pytest.raises(UserError, match="not a directory"):
        cli_verify.run(["official", str(tmp_path / "none")])
