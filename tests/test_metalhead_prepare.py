"""metalhead/prepare.py on miniature Kaggle archives in all three layouts: the current zip,
the 2019 zip holding a .tar.gz, the 2018 .tar.gz with LOC_* beside it (no network,
stdlib only)."""
import io
import os
import random
import stat
import subprocess
import sys
import tarfile
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "metalhead", "prepare.py")
DATA = os.path.join(REPO, "slim", "datasets")
sys.path.insert(0, os.path.join(REPO, "metalhead"))
import layout_check  # noqa: E402
import prepare  # noqa: E402

SYNSETS = open(os.path.join(DATA, "imagenet_lsvrc_2015_synsets.txt")).read().split()
LABELS = open(os.path.join(DATA, "imagenet_2012_validation_synset_labels.txt")).read().split()
INNER = "imagenet_object_localization_patched2019.tar.gz"
CLS = "ILSVRC/Data/CLS-LOC/"


def jpeg(seed):
    rnd = random.Random(seed)
    return b"\xff\xd8\xff\xe0" + bytes(rnd.randrange(256) for _ in range(200 + seed % 50)) + b"\xff\xd9"


def loc_files(val_numbers=range(1, 7), classes=SYNSETS):
    rows = ["ILSVRC2012_val_%08d,%s 10 20 110 120 %s 5 6 7 8 " % (n, LABELS[n - 1], LABELS[n - 1])
            for n in val_numbers]
    random.Random(7).shuffle(rows)  # Kaggle's rows are not in number order
    return {
        "LOC_synset_mapping.txt": "".join("%s class %d, text\n" % (s, i) for i, s in enumerate(classes)),
        "LOC_val_solution.csv": "ImageId,PredictionString\n" + "\n".join(rows) + "\n",
        "LOC_train_solution.csv": "ImageId,PredictionString\n%s_1,%s 1 2 3 4 \n" % (SYNSETS[0], SYNSETS[0]),
        "LOC_sample_submission.csv": "ImageId,PredictionString\nILSVRC2012_test_00000001,n01440764\n",
    }


def tree_files():
    files = {}
    train = []
    for c in (SYNSETS[0], SYNSETS[1], SYNSETS[500]):
        for k in (1, 2):
            files[CLS + "train/%s/%s_%d.JPEG" % (c, c, k)] = jpeg(len(files))
            train.append("%s/%s_%d %d" % (c, c, k, len(train) + 1))
    for n in range(1, 7):
        files[CLS + "val/ILSVRC2012_val_%08d.JPEG" % n] = jpeg(100 + n)
    for n in (1, 2):
        files[CLS + "test/ILSVRC2012_test_%08d.JPEG" % n] = jpeg(200 + n)
    files["ILSVRC/Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.xml"] = b"<annotation></annotation>\n"
    # One listed image is absent, as in a partial copy: verify must name it.
    train.append("%s/%s_99 %d" % (SYNSETS[0], SYNSETS[0], len(train) + 1))
    files["ILSVRC/ImageSets/CLS-LOC/train_cls.txt"] = ("\n".join(train) + "\n").encode()
    return files


def as_bytes(v):
    return v.encode() if isinstance(v, str) else v


def write_zip(path, files, links=()):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        dirs = sorted({n.rsplit("/", 1)[0] + "/" for n in files if "/" in n})
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, data in files.items():
            zf.writestr(name, as_bytes(data))
        for name, target in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def tar_gz(files, extra=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for d in sorted({n.rsplit("/", 1)[0] for n in files if "/" in n}):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(as_bytes(data))
            tar.addfile(info, io.BytesIO(as_bytes(data)))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def direct_zip(tmp_path, loc=None, tree=None):
    files = dict(tree if tree is not None else tree_files())
    files.update(loc if loc is not None else loc_files())
    return write_zip(str(tmp_path / "direct.zip"), files)


def nested_zip(tmp_path, loc=None, tree=None, cut=None):
    inner = tar_gz({"./" + k: v for k, v in (tree if tree is not None else tree_files()).items()})
    files = dict(loc if loc is not None else loc_files())
    files[INNER] = inner[:cut] if cut else inner
    return write_zip(str(tmp_path / "nested.zip"), files)


def download_2018(tmp_path, loc=None, tree=None, cut=None):
    """The 2018 download: imagenet_object_localization.tar.gz with the LOC_* files beside
    it in one folder (no zip)."""
    d = tmp_path / "kaggle-2018"
    d.mkdir()
    inner = tar_gz(tree if tree is not None else tree_files())
    (d / prepare.OLD_TAR).write_bytes(inner[:cut] if cut else inner)
    for name, text in (loc if loc is not None else loc_files()).items():
        (d / name).write_text(text)
    return str(d)


LAYOUTS = {"direct": direct_zip, "nested": nested_zip, "2018": download_2018}


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=120)


def tree_of(root):
    found = {}
    for top, _, names in os.walk(root):
        for n in names:
            full = os.path.join(top, n)
            found[os.path.relpath(full, root).replace(os.sep, "/")] = open(full, "rb").read()
    return found


def expected_tree():
    want = {k: as_bytes(v) for k, v in tree_files().items()}
    want.update({k: as_bytes(v) for k, v in loc_files().items()})
    return want


def one_error(r, *needles):
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("prepare: error: ")
    for n in needles:
        assert n in last, last
    return last


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_gives_the_metalhead_tree(tmp_path, layout):
    archive = LAYOUTS[layout](tmp_path)
    out = tmp_path / "out"
    r = run(archive, "--out", out)
    assert r.returncode == 0, r.stderr
    assert tree_of(out) == expected_tree()  # nothing else: no inner tar.gz, no temp files
    assert "train       6 images in 3 of 1000 classes (2 to 2 per class)" in r.stdout
    assert "val         6 images" in r.stdout and "test        2 images" in r.stdout
    assert "1 train images listed in train_cls.txt (%s/%s_99)" % (SYNSETS[0], SYNSETS[0]) in r.stdout
    assert "997 classes without train images" in r.stdout
    assert "49994 validation labels" in r.stdout
    assert "result: partial" in r.stdout


@pytest.mark.parametrize("layout", ["nested", "2018"])
def test_rerun_is_idempotent(tmp_path, layout):
    archive = LAYOUTS[layout](tmp_path)
    out = tmp_path / "out"
    assert run(archive, "--out", out).returncode == 0
    stamps = {p: os.stat(os.path.join(out, p)).st_mtime_ns for p in tree_of(out)}
    r = run(archive, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "0 files written, %d already there" % len(stamps) in r.stderr
    assert {p: os.stat(os.path.join(out, p)).st_mtime_ns for p in tree_of(out)} == stamps


@pytest.mark.parametrize("layout", ["nested", "2018"])
def test_rerun_after_interruption_completes(tmp_path, monkeypatch, capsys, layout):
    archive = LAYOUTS[layout](tmp_path)
    out = tmp_path / "out"
    real_put, calls = prepare.Writer.put, []

    def put_then_stop(self, rel, size, open_member, label):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(rel)
        return real_put(self, rel, size, open_member, label)

    monkeypatch.setattr(prepare.Writer, "put", put_then_stop)
    assert prepare.main([archive, "--out", str(out)]) == 130
    assert "rerun" in capsys.readouterr().err
    monkeypatch.setattr(prepare.Writer, "put", real_put)
    # Also damage what the first run left: a short file, a stale temp file.
    short = out / calls[-1]
    short.write_bytes(short.read_bytes()[:10])
    (short.parent / ("." + short.name + prepare.TMP_SUFFIX)).write_bytes(b"junk")
    assert prepare.main([archive, "--out", str(out)]) == 0
    assert tree_of(out) == expected_tree()


def test_unpacked_folder_is_hard_linked(tmp_path):
    src = tmp_path / "src"
    for rel, data in expected_tree().items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    out = tmp_path / "out"
    r = run(src, "--out", out)
    assert r.returncode == 0, r.stderr
    assert tree_of(out) == expected_tree()
    some = CLS + "val/ILSVRC2012_val_00000001.JPEG"
    assert os.stat(out / some).st_ino == os.stat(src / some).st_ino


def test_download_folder_and_inner_tar_are_accepted(tmp_path):
    dl = tmp_path / "dl"
    dl.mkdir()
    os.rename(direct_zip(tmp_path), dl / "imagenet-object-localization-challenge.zip")
    assert run(dl, "--out", tmp_path / "a").returncode == 0
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(nested_zip(tmp_path)) as zf:
        zf.extractall(unzipped)
    assert run(unzipped, "--out", tmp_path / "b").returncode == 0
    assert tree_of(tmp_path / "a") == tree_of(tmp_path / "b") == expected_tree()


@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/evil-abs.txt", "ILSVRC/../../evil.txt",
                                 "ILSVRC\\..\\evil.txt"])
def test_zip_with_escaping_names_is_refused(tmp_path, bad):
    files = dict(tree_files(), **loc_files())
    files[bad] = b"evil"
    archive = write_zip(str(tmp_path / "bad.zip"), files)
    out = tmp_path / "deep" / "out"
    one_error(run(archive, "--out", out), "bad.zip", "refusing")
    assert not os.path.exists(out / "ILSVRC")  # names are all checked before writing
    assert not os.path.exists("/tmp/evil-abs.txt")
    assert not [p for p in tmp_path.rglob("evil*")]


def test_zip_symlink_member_is_refused(tmp_path):
    files = dict(tree_files(), **loc_files())
    archive = write_zip(str(tmp_path / "bad.zip"), files, links=[("ILSVRC/link", "/etc/passwd")])
    one_error(run(archive, "--out", tmp_path / "out"), "ILSVRC/link", "symbolic link")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, "dotdot"])
def test_tar_links_and_escapes_are_refused(tmp_path, kind):
    if kind == "dotdot":
        info = tarfile.TarInfo("ILSVRC/../../evil.txt")
    else:
        info = tarfile.TarInfo("ILSVRC/Data/CLS-LOC/val/link.JPEG")
        info.type, info.linkname = kind, "../../../../../etc/passwd"
    files = dict(loc_files())
    files[INNER] = tar_gz(tree_files(), extra=[info])
    archive = write_zip(str(tmp_path / "bad.zip"), files)
    one_error(run(archive, "--out", tmp_path / "out"), INNER, "refusing")
    assert not [p for p in tmp_path.rglob("evil*")]
    assert not os.path.lexists(tmp_path / "out" / CLS / "val" / "link.JPEG")


def test_truncated_zip(tmp_path):
    archive = direct_zip(tmp_path)
    data = open(archive, "rb").read()
    open(archive, "wb").write(data[: len(data) // 2])
    one_error(run(archive, "--out", tmp_path / "out"), archive, "not a complete zip archive",
              "download.sh")
    open(archive + ".kaggle-partial", "w").write("{}")
    one_error(run(archive, "--out", tmp_path / "out"), "download is unfinished")


@pytest.mark.parametrize("cut", [3000, 0.5, -4])  # a header, mid-data, the gzip trailer
def test_truncated_inner_tar(tmp_path, cut):
    size = len(tar_gz(tree_files()))
    cut = int(size * cut) if isinstance(cut, float) else cut
    archive = nested_zip(tmp_path, cut=cut)
    one_error(run(archive, "--out", tmp_path / "out"), archive, INNER, "truncated or damaged")
    # The same .tar.gz on its own (the older standalone download) is checked the same way.
    with zipfile.ZipFile(archive) as zf:
        zf.extract(INNER, tmp_path)
    one_error(run(tmp_path / INNER, "--out", tmp_path / "out2"), INNER, "truncated or damaged")


def test_missing_val_solution(tmp_path):
    loc = loc_files()
    del loc["LOC_val_solution.csv"]
    one_error(run(direct_zip(tmp_path, loc=loc), "--out", tmp_path / "out"),
              "LOC_val_solution.csv is missing")


def test_999_classes(tmp_path):
    r = run(direct_zip(tmp_path, loc=loc_files(classes=SYNSETS[:999])), "--out", tmp_path / "out")
    one_error(r, "LOC_synset_mapping.txt lists 999 classes", SYNSETS[999])


def test_foreign_synset_in_mapping(tmp_path):
    classes = SYNSETS[:999] + ["n99999999"]
    r = run(direct_zip(tmp_path, loc=loc_files(classes=classes)), "--out", tmp_path / "out")
    one_error(r, "LOC_synset_mapping.txt names n99999999", "imagenet_lsvrc_2015_synsets.txt")


def test_val_label_that_disagrees(tmp_path):
    loc = loc_files()
    wrong = SYNSETS[1] if LABELS[2] != SYNSETS[1] else SYNSETS[2]
    loc["LOC_val_solution.csv"] = loc["LOC_val_solution.csv"].replace(
        "ILSVRC2012_val_00000003,%s" % LABELS[2], "ILSVRC2012_val_00000003,%s" % wrong)
    one_error(run(direct_zip(tmp_path, loc=loc), "--out", tmp_path / "out"),
              "LOC_val_solution.csv disagrees", "ILSVRC2012_val_00000003")


def test_unknown_train_folder_and_unlabelled_val_image(tmp_path):
    tree = tree_files()
    tree[CLS + "train/n99999999/n99999999_1.JPEG"] = jpeg(1)
    tree[CLS + "val/ILSVRC2012_val_00000042.JPEG"] = jpeg(2)
    r = run(direct_zip(tmp_path, tree=tree), "--out", tmp_path / "out")
    one_error(r, "inconsistent (2 problem(s)", "n99999999 is not one of the 1000 classes")
    assert "ILSVRC2012_val_00000042.JPEG has no row in LOC_val_solution.csv" in r.stdout


def test_expect_full_rejects_a_partial_tree(tmp_path):
    out = tmp_path / "out"
    assert run(direct_zip(tmp_path), "--out", out).returncode == 0
    one_error(run("--verify-only", "--out", out, "--expect-full"), "not the complete release",
              "train_cls.txt")


def full_tree(out, monkeypatch):
    """A complete release in miniature: one image per class, all 50,000 validation
    images (empty files), one test image."""
    for rel, data in loc_files(val_numbers=range(1, 50001)).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(data)
    for c in SYNSETS:
        os.makedirs(out / CLS / "train" / c)
        open(out / CLS / "train" / c / ("%s_1.JPEG" % c), "wb").close()
    os.makedirs(out / CLS / "val")
    for n in range(1, 50001):
        open(out / CLS / "val" / ("ILSVRC2012_val_%08d.JPEG" % n), "wb").close()
    os.makedirs(out / CLS / "test")
    open(out / CLS / "test" / "ILSVRC2012_test_00000001.JPEG", "wb").close()
    # The real release has 1,281,167 / 100,000; scale the targets to this tree.
    monkeypatch.setitem(layout_check.FULL, "train", 1000)
    monkeypatch.setitem(layout_check.FULL, "test", 1)


def test_complete_tree_passes_expect_full(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    full_tree(out, monkeypatch)
    assert prepare.main(["--verify-only", "--out", str(out), "--expect-full"]) == 0
    assert "result: full: the complete ILSVRC2012 release" in capsys.readouterr().out
    (out / CLS / "val" / "stray.txt").write_text("x")
    assert prepare.main(["--verify-only", "--out", str(out), "--expect-full"]) == 1
    assert "extra files present" in capsys.readouterr().err


def test_shipped_lists_must_be_readable(tmp_path):
    out = tmp_path / "out"
    assert run(direct_zip(tmp_path), "--out", out).returncode == 0
    one_error(run("--verify-only", "--out", out, "--synsets", tmp_path / "nope.txt"),
              "nope.txt", "--synsets")


def test_not_an_archive(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"hello")
    one_error(run(tmp_path / "x.bin", "--out", tmp_path / "out"), "x.bin")
    one_error(run(tmp_path / "missing.zip", "--out", tmp_path / "out"), "missing.zip", "does not exist")
