"""Issue 15 points 2-4 on miniature archives of all three Kaggle layouts: the 2018
download, a layout check that means it (misfiled images, LOC_train_solution.csv and
LOC_val_solution.csv against the files), and the opt-in class-folder view."""
import errno
import os
import zipfile

import pytest

from test_metalhead_prepare import (CLS, LAYOUTS, LABELS, SYNSETS, download_2018,
                                    full_tree, jpeg, loc_files, one_error, prepare, run,
                                    tree_files, tree_of)

import class_folders  # noqa: E402  (metalhead/ is on sys.path through test_metalhead_prepare)


def prepared(tmp_path, layout="direct", **kw):
    out = tmp_path / "out"
    r = run(LAYOUTS[layout](tmp_path, **kw), "--out", out)
    assert r.returncode == 0, r.stderr
    return out


# ---------------------------------------------------------------- 2: the 2018 download

def test_2018_tar_given_directly_takes_the_loc_files_beside_it(tmp_path):
    d = download_2018(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(os.path.join(d, prepare.OLD_TAR), "--out", a).returncode == 0
    assert run(d, "--out", b).returncode == 0
    assert tree_of(a) == tree_of(b) == tree_of(prepared(tmp_path, "direct"))


def test_2018_loc_files_served_as_single_file_zips(tmp_path):
    d = download_2018(tmp_path)
    for name in ("LOC_val_solution.csv", "LOC_train_solution.csv"):
        with zipfile.ZipFile(os.path.join(d, name + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
            z.write(os.path.join(d, name), name)
        os.remove(os.path.join(d, name))
    out = tmp_path / "out"
    r = run(d, "--out", out)
    assert r.returncode == 0, r.stderr
    assert (out / "LOC_val_solution.csv").read_text() == loc_files()["LOC_val_solution.csv"]
    assert not (out / "LOC_val_solution.csv.zip").exists()
    with zipfile.ZipFile(os.path.join(d, "LOC_val_solution.csv.zip"), "w") as z:
        z.writestr("other.csv", "x")
    os.remove(out / "LOC_val_solution.csv")
    one_error(run(d, "--out", out), "LOC_val_solution.csv.zip", "should hold just")


@pytest.mark.parametrize("cut", [3000, 0.5, -4])
def test_truncated_2018_tar(tmp_path, cut):
    from test_metalhead_prepare import tar_gz
    size = len(tar_gz(tree_files()))
    d = download_2018(tmp_path, cut=int(size * cut) if isinstance(cut, float) else cut)
    one_error(run(d, "--out", tmp_path / "out"), prepare.OLD_TAR, "truncated or damaged")


def test_2018_tar_with_an_escaping_member_is_refused(tmp_path):
    tree = dict(tree_files())
    tree["ILSVRC/../../evil.txt"] = b"evil"
    d = download_2018(tmp_path, tree=tree)
    one_error(run(d, "--out", tmp_path / "deep" / "out"), prepare.OLD_TAR, "refusing")
    assert not [p for p in tmp_path.rglob("evil*")]


def test_folder_with_nothing_known_names_all_three_layouts(tmp_path):
    (tmp_path / "empty").mkdir()
    last = one_error(run(tmp_path / "empty", "--out", tmp_path / "out"))
    for name in (prepare.ZIP_NAME, prepare.INNER_TAR, prepare.OLD_TAR):
        assert name in last


# ---------------------------------------------------------------- 3: the layout check

@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_misfiled_training_image_is_an_error_naming_it(tmp_path, layout):
    tree = tree_files()
    wrong = CLS + "train/%s/%s_7.JPEG" % (SYNSETS[0], SYNSETS[1])
    tree[wrong] = jpeg(7)
    r = run(LAYOUTS[layout](tmp_path, tree=tree), "--out", tmp_path / "out")
    one_error(r, "inconsistent", wrong, "filed under %s" % SYNSETS[0],
              "move it to train/%s/" % SYNSETS[1])


def test_train_solution_lists_an_absent_image(tmp_path):
    loc = loc_files()
    loc["LOC_train_solution.csv"] += "%s_5,%s 1 2 3 4 \n" % (SYNSETS[500], SYNSETS[500])
    out = prepared(tmp_path, loc=loc)
    r = run("--verify-only", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "train boxes 2 rows in LOC_train_solution.csv" in r.stdout
    assert "missing     1 train images listed in LOC_train_solution.csv (%s_5)" \
        % SYNSETS[500] in r.stdout
    assert "result: partial" in r.stdout
    one_error(run("--verify-only", "--out", out, "--expect-full"), "not the complete release")


def test_train_solution_box_of_another_class_is_a_note(tmp_path):
    loc = loc_files()
    loc["LOC_train_solution.csv"] += "%s_1,%s 1 2 3 4 %s 5 6 7 8 \n" % (
        SYNSETS[1], SYNSETS[1], SYNSETS[2])
    r = run("--verify-only", "--out", prepared(tmp_path, loc=loc))
    assert r.returncode == 0, r.stderr
    assert "note        1 rows of LOC_train_solution.csv have boxes labelled with another " \
        "synset than the image's (%s_1)" % SYNSETS[1] in r.stdout


@pytest.mark.parametrize("row", ["n99999999_1,n99999999 1 2 3 4", "n01440764_1,",
                                 "n01440764_1,n01440764 1 2 3", "bogus,n01440764 1 2 3 4",
                                 "n01440764_1,n01440764 1 2 3 4"])
def test_bad_train_solution_row(tmp_path, row):
    loc = loc_files()  # its first row is n01440764_1: the last case repeats it
    loc["LOC_train_solution.csv"] += row + "\n"
    one_error(run(LAYOUTS["direct"](tmp_path, loc=loc), "--out", tmp_path / "out"),
              "LOC_train_solution.csv line 3 is not a valid, new")


def test_missing_train_solution(tmp_path):
    loc = loc_files()
    del loc["LOC_train_solution.csv"]
    one_error(run(LAYOUTS["2018"](tmp_path, loc=loc), "--out", tmp_path / "out"),
              "LOC_train_solution.csv is missing")


def test_val_solution_lists_an_absent_image(tmp_path):
    tree = tree_files()
    del tree[CLS + "val/ILSVRC2012_val_00000004.JPEG"]
    out = prepared(tmp_path, "nested", tree=tree)
    r = run("--verify-only", "--out", out)
    assert "missing     1 validation images listed in LOC_val_solution.csv (e.g. " \
        "ILSVRC2012_val_00000004.JPEG)" in r.stdout
    assert "result: partial" in r.stdout


def test_full_needs_all_50000_validation_rows(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    full_tree(out, monkeypatch)
    assert prepare.main(["--verify-only", "--out", str(out), "--expect-full"]) == 0
    assert "result: full" in capsys.readouterr().out
    text = (out / "LOC_val_solution.csv").read_text().splitlines()
    dropped = text.pop(17)
    (out / "LOC_val_solution.csv").write_text("\n".join(text) + "\n")
    assert prepare.main(["--verify-only", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "%s.JPEG has no row in LOC_val_solution.csv" % dropped.split(",")[0] in err
    assert err.count("\n") == 1


# ---------------------------------------------------------------- 4: class folders

def _view(root):
    return {os.path.relpath(os.path.join(top, n), root): os.path.join(top, n)
            for top, _, names in os.walk(root) for n in names}


def test_class_folders_are_hard_links_grouped_by_synset(tmp_path):
    out, view = tmp_path / "out", tmp_path / "view"
    r = run(LAYOUTS["nested"](tmp_path), "--out", out, "--class-folders", view)
    assert r.returncode == 0, r.stderr
    assert "12 links made, 0 already there (hard links; no copies)" in r.stderr
    links = _view(view)
    want = {"train/%s/%s_%d.JPEG" % (c, c, k) for c in (SYNSETS[0], SYNSETS[1], SYNSETS[500])
            for k in (1, 2)}
    want |= {"val/%s/ILSVRC2012_val_%08d.JPEG" % (LABELS[n - 1], n) for n in range(1, 7)}
    assert set(links) == want
    for rel, path in links.items():
        split, synset, name = rel.split("/")
        src = out / CLS / split / (synset if split == "train" else "") / name
        assert os.stat(path).st_ino == os.stat(src).st_ino and not os.path.islink(path)
    # every class folder exists in both splits, so sorted-folder indices are the 1000-way ones
    assert sorted(os.listdir(view / "train")) == sorted(os.listdir(view / "val")) == SYNSETS


def test_class_folders_rerun_keeps_and_repairs(tmp_path):
    out = prepared(tmp_path)
    view = tmp_path / "view"
    args = ["--verify-only", "--out", str(out), "--class-folders", str(view)]
    assert run(*args).returncode == 0
    r = run(*args)
    assert r.returncode == 0 and "0 links made, 12 already there" in r.stderr
    # a source rewritten by a later prepare run (new inode), a leftover temporary file
    src = out / CLS / "val" / "ILSVRC2012_val_00000001.JPEG"
    data = src.read_bytes()
    src.unlink()
    src.write_bytes(data)
    leftover = view / "val" / LABELS[0] / (".x" + class_folders.TMP_SUFFIX)
    leftover.write_bytes(b"")
    r = run(*args)
    assert r.returncode == 0 and "1 links made, 11 already there" in r.stderr
    assert os.stat(view / "val" / LABELS[0] / src.name).st_ino == os.stat(src).st_ino
    assert not leftover.exists()


def test_class_folders_refuse_strays_and_overlap(tmp_path):
    out = prepared(tmp_path)
    view = tmp_path / "view"
    (view / "val" / SYNSETS[3]).mkdir(parents=True)
    stray = view / "val" / SYNSETS[3] / "old.JPEG"
    stray.write_bytes(b"x")
    one_error(run("--verify-only", "--out", out, "--class-folders", view), str(stray),
              "remove them")
    one_error(run("--verify-only", "--out", out, "--class-folders", out / "ILSVRC" / "v"),
              "overlaps")


def test_class_folders_across_file_systems_are_symlinks(tmp_path, monkeypatch, capsys):
    out = prepared(tmp_path)
    view = tmp_path / "view"

    def no_hard_links(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link", src)

    monkeypatch.setattr(class_folders.os, "link", no_hard_links)
    assert prepare.main(["--verify-only", "--out", str(out), "--class-folders", str(view)]) == 0
    assert "(symbolic links, as hard links are not possible there; no copies)" in \
        capsys.readouterr().err
    path = view / "train" / SYNSETS[0] / ("%s_1.JPEG" % SYNSETS[0])
    assert os.path.islink(path)
    assert os.readlink(path) == str(out / CLS / "train" / SYNSETS[0] / path.name)
    assert prepare.main(["--verify-only", "--out", str(out), "--class-folders", str(view)]) == 0
    assert "0 links made, 12 already there" in capsys.readouterr().err


def test_class_folders_only_after_a_passing_check(tmp_path):
    tree = tree_files()
    tree[CLS + "train/%s/%s_7.JPEG" % (SYNSETS[0], SYNSETS[1])] = jpeg(7)
    r = run(LAYOUTS["direct"](tmp_path, tree=tree), "--out", tmp_path / "out",
            "--class-folders", tmp_path / "view")
    one_error(r, "filed under")
    assert not (tmp_path / "view").exists()
