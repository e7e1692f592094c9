"""More bad inputs, seen as the user sees them: each ends in one `PROG: error: ...`
line naming the input and the fix, with a non-zero exit and no traceback.

Hand-edited source index headers, label files in a bucket, --tfds-metadata in task
mode, malformed rows of the Kaggle copy's LOC_val_solution.csv, --index naming no
file, --labels gs://..., broken credentials, an unreachable endpoint, and shards
holding another plan's images.
"""

import json
import os
import struct
import subprocess
import sys

import pytest

from conftest import REPO, run_cmd
from test_bad_inputs import assert_user_error, build

INDEX_FIX = "rebuild it with --index-only (or delete it)."


# --------------------------------------------------------------------------- index

def edit_index_header(path, edit):
    """Rewrite the JSON header of the index file at `path` with edit(header) -> header,
    as a hand edit would (the body and its checksum are left as they are)."""
    with open(path, "rb") as f:
        data = f.read()
    at = data.find(b"\n") + 1
    (size,) = struct.unpack_from("<Q", data, at)
    header = edit(json.loads(data[at + 8:at + 8 + size]))
    head = json.dumps(header).encode("ascii")
    with open(path, "wb") as f:
        f.write(data[:at] + struct.pack("<Q", len(head)) + head + data[at + 8 + size:])


@pytest.fixture(scope="module")
def indexed(sample_release, tmp_path_factory):
    """The index of the sample release, written by build.sh --index-only: its path."""
    out = str(tmp_path_factory.mktemp("indexed") / "out")
    r = build(sample_release[0], out, "--index-only")
    assert r.returncode == 0, r.stderr
    return os.path.join(out, "ilsvrc-source.index")


def _pop(key):
    return lambda h: {k: v for k, v in h.items() if k != key}


def _rename_in_listing(old, new):
    def edit(h):
        entry = h["listings"][0]
        entry[new] = entry.pop(old)
        return h
    return edit


def _set(*path_and_value):
    *path, value = path_and_value

    def edit(h):
        node = h
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
        return h
    return edit


def _shift_columns(h):
    h["listings"][0]["columns"][0] -= 5        # names end 5 bytes early ...
    h["listings"][0]["columns"][1] += 5        # ... and the groups start there
    return h


HAND_EDITS = [
    (_pop("stats"), "header has no 'stats'"),
    (_pop("listings"), "header has no 'listings'"),
    (_pop("body"), "header has no 'body'"),
    (_rename_in_listing("count", "images"), "header.listings[0] has no 'count'"),
    (_rename_in_listing("root", "Root"), "header.listings[0] has no 'root'"),
    (_set("meta", ["tar"]), "header.meta is [\"tar\"], not an object"),
    (_set("listings", {}), "header.listings is {}, not a list"),
    (_set("body", []), "header.body is [], not an object"),
    (_set("stats", []), "header.stats is [], not an object"),
    (_set("listings", 0, "count", "30"), "header.listings[0].count is \"30\""),
    (_set("listings", 0, "columns", {"a": 1}), "header.listings[0].columns is"),
    (_set("listings", 0, "containers", 0, "Slices"), "containers[0] is \"Slices\""),
    (_set("listings", 0, "containers", 0, 2, "Tar"), "containers[0][2] is \"Tar\""),
    (_set("listings", 0, "root", 5), "header.listings[0].root is 5"),
    (_set("listings", 0, "inner_tars", "yes"), "inner_tars is \"yes\""),
    (_set("body", "sha256", 12), "header.body.sha256 is 12"),
    (_set("stats", "rel:ILSVRC2012_img_val.tar", {"size": 1}), "header.stats["),
    (_set("version", 2), "header.format, .version"),
    (_set("listings", 0, "count", 29), "header.listings[0].count is 29"),
    (_set("listings", 1, "containers", []), "header.listings[1].containers"),
    (_shift_columns, "header.listings[0].columns do not cut"),
    (lambda h: [h], "header is [{"),
    (lambda h: "index", "header is \"index\""),
]


@pytest.mark.parametrize("edit,words", HAND_EDITS, ids=[w for _, w in HAND_EDITS])
def test_a_hand_edited_index_header_is_one_line(sample_release, indexed, tmp_path,
                                                 edit, words):
    path = str(tmp_path / "edited.index")
    with open(indexed, "rb") as f, open(path, "wb") as g:
        g.write(f.read())
    edit_index_header(path, edit)
    r = build(sample_release[0], str(tmp_path / "out"), "--index", path)
    last = assert_user_error(r, path + " is not a valid index (", words, INDEX_FIX)
    assert not os.path.exists(tmp_path / "out" / "train"), last


def test_a_hand_edited_bucket_index_is_rebuilt_not_trusted(tmp_path, monkeypatch):
    """A gs:// source's cached index that is not valid is walked again (as a stale
    one is), never trusted."""
    from ilsvrc.sources import cached, indexfile, listing
    lst = listing.Listing("train")
    lst.add("a.JPEG", "n01440764", -1, 0, 5)
    cache, paths = str(tmp_path / "cache"), ["gs://b/t.tar"]
    monkeypatch.setattr(cached, "object_stats", lambda p: {"gs://b/t.tar": [1, 1]})
    walks = []

    def walk():
        walks.append(1)
        return [lst]
    cached.cached_listings(paths, walk, cache)
    (name,) = os.listdir(cache)
    edit_index_header(os.path.join(cache, name), _set("stats", {"rel:t.tar": [1, 1]}))
    with pytest.raises(indexfile.BadIndex, match="stored relative"):
        indexfile.load(os.path.join(cache, name), {"gs://b/t.tar": [1, 1]})
    got = cached.cached_listings(paths, walk, cache)
    assert list(got[0].names) == ["a.JPEG"] and len(walks) == 2


# --------------------------------------------------------------------------- --index

def test_index_naming_a_missing_file_is_one_line(sample_release, tmp_path):
    missing = str(tmp_path / "no.index")
    r = build(sample_release[0], str(tmp_path / "out"), "--index", missing)
    assert_user_error(r, "--index %s: no such file" % missing, "--index-only")
    assert not os.path.exists(tmp_path / "out" / "train")
    r = run_cmd([sys.executable, os.path.join(REPO, "official", "imagenet_to_gcs.py"),
                 "--raw_data_dir", sample_release[0], "--nogcs_upload",
                 "--local_scratch_dir", str(tmp_path / "o2"), "--num_workers", "0",
                 "--index", missing])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "imagenet_to_gcs.py: error: --index %s: no such file. Write it first (the same "
        "command with --index_only), correct the path, or drop --index to walk the "
        "source" % missing)


def test_index_only_writes_the_named_file_then_it_is_read(sample_release, tmp_path):
    named = str(tmp_path / "sub" / "named.index")
    r = build(sample_release[0], str(tmp_path / "out"), "--index-only", "--index", named)
    assert r.returncode == 0 and os.path.isfile(named), r.stderr
    r = build(sample_release[0], str(tmp_path / "out"), "--index", named, "--no-verify")
    assert r.returncode == 0 and "index: read 42 images from %s" % named in r.stderr, \
        r.stderr


def test_a_hugging_face_copy_needs_no_index_file(tmp_path):
    """For a Hugging Face copy --index only says where its spool goes."""
    from ilsvrc.cli import options
    from ilsvrc.sources import discover
    hf = discover.Source("parquet", str(tmp_path / "t"), str(tmp_path / "v"),
                         str(tmp_path))
    options.check_index(str(tmp_path / "absent.index"), hf)


# --------------------------------------------------------------------------- TFDS

TFDS_FILES = ("dataset_info.json", "features.json", "image-class-label.labels.txt")


def _files(out, names):
    found = {}
    for name in names:
        if os.path.exists(os.path.join(out, name)):
            with open(os.path.join(out, name), "rb") as f:
                found[name] = f.read()
    return found


def test_tfds_metadata_in_task_mode_is_written_by_the_last_task(sample_release, tmp_path):
    """Every task succeeds; the one that finishes last (all shards there) writes the
    metadata, the same as one run without tasks writes."""
    src = sample_release[0]
    out, plain = str(tmp_path / "tasks"), str(tmp_path / "plain")
    first = build(src, out, "--tfds-metadata", "--task-index", "1", "--task-count", "2")
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    assert "the task that finishes last writes %s/dataset_info.json" % out \
        in first.stderr
    assert _files(out, TFDS_FILES) == {}
    last = build(src, out, "--tfds-metadata", "--task-index", "0", "--task-count", "2")
    assert last.returncode == 0, last.stderr
    assert "wrote TFDS metadata: %s/dataset_info.json" % out in last.stderr
    r = build(src, plain, "--tfds-metadata", "--no-verify")
    assert r.returncode == 0, r.stderr
    want = _files(plain, TFDS_FILES)
    assert len(want) == 3 and _files(out, TFDS_FILES) == want
    r = run_cmd([os.path.join(REPO, "verify.sh"), "official", out])
    assert r.returncode == 0 and "matches the shards" in r.stdout, r.stdout + r.stderr


# --------------------------------------------------------------------------- verify

def _problems(result):
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines()
            if line.startswith("verify.sh: problem: ")]


def test_a_shard_of_other_labels_says_what_to_do(official_sample, sample_release,
                                                  tmp_path):
    """Verified against labels it was not written with, a shard 'holds X, planned Y':
    the line says that it was written from another source or label file, and what
    to do about it."""
    src = sample_release[0]
    with open(os.path.join(src, "synset_labels.txt")) as f:
        lines = f.read().split()
    other = [lines[1], lines[0]] + lines[2:]          # images 1 and 2 swap synsets
    assert other != lines
    labels = tmp_path / "other_labels.txt"
    labels.write_text("\n".join(other) + "\n")
    r = run_cmd([os.path.join(REPO, "verify.sh"), "official", official_sample, "-j", "0",
                 "--source", src, "--labels", str(labels)])
    assert r.returncode == 1
    found = _problems(r)
    assert found and all("holds ILSVRC2012_val_0000000" in p for p in found), found
    for p in found:
        assert p.endswith("The shard was written from another source, label file or "
                          "options: verify it with the --source (and --labels) it was "
                          "converted from, or delete it and rerun the conversion to "
                          "rewrite it."), p


def test_a_shard_of_another_format_says_what_to_do(official_sample):
    r = run_cmd([os.path.join(REPO, "verify.sh"), "slim", os.path.join(
        official_sample, "validation"), "-j", "0"])
    found = _problems(r)
    records = [p for p in found if "keys differ from the format" in p]
    assert r.returncode == 1 and records, found
    assert all(p.endswith("delete it and rerun the conversion to rewrite it "
                          "(./verify.sh: check the FORMAT given).") for p in records)


# --------------------------------------------------------------------------- Kaggle CSV

KAGGLE_ZIP = "imagenet-object-localization-challenge.zip"


def _kaggle_copy(sample_release, d, form, solution=None, mapping=None):
    """The sample as a Kaggle copy (tree or zip) in `d`, with `solution` and `mapping`
    as its LOC_val_solution.csv and LOC_synset_mapping.txt (str or bytes)."""
    from kaggle_copy import loc_files, release_files, write_tree, write_zip
    raw, manifest = sample_release
    loc = loc_files(manifest["val"])
    if solution is not None:
        loc["LOC_val_solution.csv"] = solution
    if mapping is not None:
        loc["LOC_synset_mapping.txt"] = mapping
    files = release_files(raw) + sorted(loc.items())
    os.makedirs(d)
    if form == "tree":
        write_tree(d, files)
        return os.path.join(d, "LOC_val_solution.csv")
    write_zip(os.path.join(d, KAGGLE_ZIP), files)
    return os.path.join(d, KAGGLE_ZIP) + ":LOC_val_solution.csv"


@pytest.mark.parametrize("image", [
    "foo", "1234567", "ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_0000001",
    "ILSVRC2012_val_000000013", "ILSVRC2012_val_00000000", "ILSVRC2012_val_00050001",
    " ILSVRC2012_val_00000013"])
@pytest.mark.parametrize("form", ["tree", "zip"])
def test_a_malformed_solution_row_stops_build_sh(sample_release, tmp_path, image, form):
    """A row whose ImageId is no validation image number is not dropped: the run
    stops naming the file and the line (as metalhead/prepare.py refuses it)."""
    from kaggle_copy import solution_csv
    text = solution_csv(sample_release[1]["val"])
    lines = text.splitlines()
    lines.insert(5, "%s,n01440764 1 2 3 4" % image)     # line 6 of the file
    d = str(tmp_path / "kaggle")
    where = _kaggle_copy(sample_release, d, form, "\n".join(lines) + "\n")
    r = build(d, str(tmp_path / "out"))
    assert_user_error(r, "%s line 6: %r is not an ImageId of the validation set "
                      "(ILSVRC2012_val_00000001 .. ILSVRC2012_val_00050000, no suffix). "
                      "Use the file from the Kaggle archive." % (where, image))
    assert not os.path.exists(tmp_path / "out" / "train")


@pytest.mark.parametrize("form", ["tree", "zip"])
def test_a_byte_order_mark_is_stripped_as_from_label_files(sample_release, tmp_path,
                                                           form):
    from kaggle_copy import mapping_txt, solution_csv
    d = str(tmp_path / "kaggle")
    bom = "\ufeff".encode("utf-8")
    where = _kaggle_copy(sample_release, d, form,
                         bom + solution_csv(sample_release[1]["val"]).encode("utf-8"),
                         bom + mapping_txt().encode("utf-8"))
    r = build(d, str(tmp_path / "out"), "--no-verify")
    assert r.returncode == 0, r.stderr
    assert "validation labels from %s" % where in r.stderr


# --------------------------------------------------------------------------- gs://

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gs_env(tmp_path, **extra):
    env = dict(os.environ, ILSVRC_INDEX_DIR=str(tmp_path / "cache"), PYTHONPATH=REPO)
    env.update(extra)
    return env


def _gs_build(tmp_path, src, out, *extra, env=None):
    return subprocess.run([os.path.join(REPO, "build.sh"), src, "-o", out, "-j", "0",
                           "--no-verify"] + list(extra), cwd=REPO, capture_output=True,
                          text=True, env=env or _gs_env(tmp_path))


@pytest.fixture(scope="module")
def label_bucket(gcs_emulator, sample_release):
    """A bucket holding the sample's tars under rel/: its name."""
    name = "r3-labels-%d" % os.getpid()
    gcs_emulator.bucket(name)
    gcs_emulator.upload_dir(name, "rel/", sample_release[0],
                            ["ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"])
    return name


def _put(emu, bucket, name, text):
    emu.client().bucket(bucket).blob(name).upload_from_string(text)


def _good_labels(sample_release):
    with open(os.path.join(sample_release[0], "synset_labels.txt")) as f:
        return f.read()


def test_a_bad_label_file_in_a_bucket_is_named_by_its_object_and_a_fix_is_read(
        gcs_emulator, label_bucket, sample_release, tmp_path):
    good = _good_labels(sample_release)
    obj = "gs://%s/rel/synset_labels.txt" % label_bucket
    _put(gcs_emulator, label_bucket, "rel/synset_labels.txt",
         good.replace("\n", " \n", 1))                     # a trailing space on line 1
    r = _gs_build(tmp_path, "gs://%s/rel" % label_bucket, str(tmp_path / "out"))
    last = assert_user_error(r, "validation label file %s line 1 is " % obj,
                             "Fix or remove that line.")
    assert str(tmp_path / "cache") not in last
    _put(gcs_emulator, label_bucket, "rel/synset_labels.txt", good)     # fixed
    r = _gs_build(tmp_path, "gs://%s/rel" % label_bucket, str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "validation labels from %s" % obj in r.stderr


def test_labels_from_a_bucket(gcs_emulator, label_bucket, sample_release, tmp_path):
    """--labels gs://... is read from the bucket (a local source here)."""
    obj = "gs://%s/labels/mine.txt" % label_bucket
    _put(gcs_emulator, label_bucket, "labels/mine.txt", _good_labels(sample_release))
    src = sample_release[0]
    r = _gs_build(tmp_path, src, str(tmp_path / "out"), "--labels", obj)
    assert r.returncode == 0, r.stderr
    assert "validation labels from %s" % obj in r.stderr
    r = _gs_build(tmp_path, src, str(tmp_path / "o2"), "--labels", obj + ".missing")
    assert_user_error(r, "validation label file %s.missing: no such object" % obj)
    r = _gs_build(tmp_path, src, str(tmp_path / "o3"), "--labels", obj, "--extract")
    assert r.returncode == 2
    assert_user_error(r, "--extract copies --labels into DIR/synset_labels.txt")


def test_a_label_object_replaced_while_it_is_read_is_refused(monkeypatch, tmp_path):
    from ilsvrc import storage
    from ilsvrc.errors import UserError
    from ilsvrc.storage import cache

    class Store:
        generation = 0

        def stat(self, path, want_crc=False):
            self.generation += 1
            return storage.Info(path, 3, None, self.generation, {})

        def read(self, path, offset, size):
            return b"abc"
    monkeypatch.setattr(storage, "_override", Store())
    with pytest.raises(UserError, match=r"^gs://b/l.txt was replaced \(or removed\) "
                       "while it was read"):
        cache.fetch_small("gs://b/l.txt", str(tmp_path))


CREDENTIAL_FILES = [
    ("missing.json", None, "which does not exist"),
    ("broken.json", b'{"type": "service_account", ', "which is not a JSON key file"),
    ("empty.json", b"", "which is not a JSON key file"),
    ("list.json", b"[1, 2]",
     "which is not a credentials file (a JSON object with a \"type\")"),
    ("dir", "dir", "which cannot be read (Is a directory)"),
    ("fields.json", b'{"type": "service_account"}',
     "which Google's auth library cannot load as credentials"),
]


@pytest.mark.parametrize("name,content,words", CREDENTIAL_FILES,
                         ids=[c[0] for c in CREDENTIAL_FILES])
def test_a_broken_credentials_file_is_named(sample_release, tmp_path, name, content,
                                            words):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    env = _gs_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(path))
    env.pop("STORAGE_EMULATOR_HOST", None)
    r = _gs_build(tmp_path, sample_release[0], "gs://some-bucket/x", env=env)
    assert r.returncode == 1
    assert_user_error(r, "no Google Cloud credentials for gs://some-bucket: run 'gcloud "
                      "auth application-default login' and unset "
                      "GOOGLE_APPLICATION_CREDENTIALS, or point it at a service-account "
                      "key file: it names %s, %s. Then rerun." % (path, words))


def test_an_unreachable_endpoint_fails_in_seconds_naming_it(sample_release, tmp_path):
    import time
    port = _free_port()                       # nothing listens there any more
    endpoint = "http://127.0.0.1:%d" % port
    env = _gs_env(tmp_path, STORAGE_EMULATOR_HOST=endpoint,
                  GOOGLE_CLOUD_PROJECT="test-project")
    for src, out, doing in ((sample_release[0], "gs://b/out", "writing to gs://b/out"),
                            ("gs://b/in", str(tmp_path / "o"), "reading gs://b/in")):
        t = time.monotonic()
        r = _gs_build(tmp_path, src, out, env=env)
        took = time.monotonic() - t
        assert_user_error(r, "cannot reach 127.0.0.1:%d (connection refused) while %s"
                          % (port, doing), "STORAGE_EMULATOR_HOST=%s sends every "
                          "request there: start the emulator, or fix or unset the "
                          "variable, then rerun." % endpoint)
        assert took < 30, took


def test_connection_failures_are_retried_a_few_times_unless_the_endpoint_answered(
        monkeypatch):
    from ilsvrc.storage import base, gcs
    import requests
    err = requests.exceptions.ConnectionError("no")
    err.__cause__ = ConnectionRefusedError(111, "Connection refused")
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    out = gcs.classify(err, "gs://b/o", "reading")
    assert isinstance(out, base.Unreachable)
    assert str(out) == ("cannot reach Cloud Storage (connection refused) while reading "
                        "gs://b/o: check this machine's network, DNS, proxy and firewall "
                        "(Cloud Storage is storage.googleapis.com:443), then rerun.")
    reset = gcs.classify(requests.exceptions.ConnectionError(ConnectionResetError()),
                         "gs://b/o", "reading")
    assert isinstance(reset, base.Transient) and not isinstance(reset, base.Unreachable)
    for unreachable, calls in ((base.UNREACHABLE_RETRIES, 3), (base.RETRIES, 9)):
        tries = []

        def fail():
            tries.append(1)
            raise base.Unreachable("x")
        with pytest.raises(base.Unreachable):
            base.with_retries(fail, sleep=lambda s: None, unreachable=unreachable)
        assert len(tries) == calls
