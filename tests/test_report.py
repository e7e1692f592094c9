"""The run report (docs/report.md): OUT/report.json and a self-contained
OUT/report.html after every conversion, OUT/verify-report.* after ./verify.sh.
What it says is held against the shards themselves: counts, classes, labels, and a
contact sheet whose images are the records' own bytes; the page is rendered in
headless Chromium (skipped where there is none)."""

import base64
import glob
import html.parser
import io
import json
import os
import shutil
import subprocess
from collections import Counter

import pytest

import ilsvrc
from conftest import REPO, run_cmd, shard_records
from ilsvrc import shipped
from ilsvrc.cli import verify as cli_verify
from ilsvrc.formats import registry, report
from ilsvrc.records import features, tfrecord

SPLITS = ("train", "validation")


def texts():
    return dict(line.split("\t", 1) for line in
                shipped.read_lines(shipped.METADATA_FILE))


def load(out, name="report"):
    with open(os.path.join(out, name + ".json"), encoding="utf-8") as f:
        data = json.load(f)
    with open(os.path.join(out, name + ".html"), encoding="utf-8") as f:
        return data, f.read()


def official_shards(out):
    return {split: sorted(glob.glob(os.path.join(out, split, split + "-*-of-*")))
            for split in SPLITS}


def all_records(paths):
    return [feats for path in paths for feats in shard_records(path)]


def one(feats, key):
    value = feats[key][1][0]
    return value.decode("utf-8") if isinstance(value, bytes) else value


class SheetImages(html.parser.HTMLParser):
    """The contact sheet's <img> elements: [{attribute: value}]."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("class") == "sheet-image":
            self.found.append(attrs)


def sheet_images(page):
    parser = SheetImages()
    parser.feed(page)
    return parser.found


@pytest.fixture(scope="module")
def official_run(sample_release, tmp_path_factory):
    """./build.sh on the sample: (output directory, CompletedProcess)."""
    out = str(tmp_path_factory.mktemp("report") / "out")
    r = run_cmd(["./build.sh", sample_release[0], "-o", out, "-j", "0"])
    assert r.returncode == 0, r.stderr
    return out, r


def test_the_last_line_names_the_report(official_run):
    out, r = official_run
    assert r.stderr.strip().splitlines()[-1] == (
        "report: %s (data: report.json)" % os.path.join(out, "report.html"))


def test_counts_classes_and_labels_are_those_of_the_shards(official_run, sample_release):
    out, _ = official_run
    data, page = load(out)
    names = texts()
    by_synset = {r["synset"]: r for r in data["classes"]["table"]}
    labels = {}
    for split, paths in official_shards(out).items():
        records = all_records(paths)
        assert data["splits"][split]["records"] == len(records) > 0
        counts = Counter(one(f, "image/class/synset") for f in records)
        assert {s: r[split] for s, r in by_synset.items()} == dict(counts)
        for f in records:
            labels.setdefault(one(f, "image/class/synset"), one(f, "image/class/label"))
        sizes = sorted(os.path.getsize(p) for p in paths)
        assert data["splits"][split]["shard_bytes"] == {
            "min": sizes[0], "median": sizes[(len(sizes) - 1) // 2], "max": sizes[-1],
            "total": sum(sizes)}
        assert data["splits"][split]["nonempty_shards"] == sum(1 for n in sizes if n)
    assert {s: r["label"] for s, r in by_synset.items()} == labels
    assert all(r["text"] == names[r["synset"]] for r in by_synset.values())
    classes = data["classes"]
    assert (classes["present"], classes["missing"]) == (6, 994)
    assert len(classes["missing_synsets"]) == 994
    assert not {m["synset"] for m in classes["missing_synsets"]} & set(by_synset)
    assert classes["outside_range"] == 6     # the sample is far below 732..1300 and 50
    assert "6 of 1000 classes present, 994 missing" in page
    assert names["n01440764"] in page


def test_run_details(official_run, sample_release):
    out, _ = official_run
    data, _ = load(out)
    raw = sample_release[0]
    assert data["source"] == {"directory": raw, "kind": "tar",
                              "validation_labels": os.path.join(raw, "synset_labels.txt")}
    assert data["tool"]["version"] == ilsvrc.__version__
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    assert data["tool"]["commit"] == (head.stdout.strip() if head.returncode == 0
                                      else "unknown")
    assert data["command"]["line"] == "build.sh %s -o %s -j 0" % (raw, out)
    assert data["command"]["options"]["workers"] == 0
    assert [s["stage"] for s in data["timing"]["stages"]] == ["index", "plan", "write",
                                                              "verify"]
    assert data["timing"]["images"] == 42 and data["timing"]["images_per_second"] > 0
    assert data["checks"]["verified"] and data["status"] == "OK"
    assert data["splits"]["train"]["shards_written"] == 1024
    assert report.FULL_COUNTS == registry.FULL_COUNTS


def test_contact_sheet_images_are_the_records_bytes(official_run):
    out, _ = official_run
    data, page = load(out)
    entries = data["contact_sheet"]["images"]
    images = sheet_images(page)
    assert len(images) == len(entries) == 24
    assert {e["split"] for e in entries} == set(SPLITS)
    names = texts()
    for img, entry in zip(images, entries):
        head, _, payload = img["src"].partition(",")
        assert head == "data:image/jpeg;base64"
        assert (img["data-shard"], int(img["data-record"])) == (entry["shard"],
                                                                entry["record"])
        feats = shard_records(entry["shard"])[entry["record"]]
        assert base64.b64decode(payload) == feats["image/encoded"][1][0]
        assert entry["filename"] == one(feats, "image/filename") == img["alt"]
        assert entry["label"] == one(feats, "image/class/label")
        assert entry["synset"] == one(feats, "image/class/synset")
        assert entry["text"] == names[entry["synset"]]
        assert entry["width"] == one(feats, "image/width")


def test_a_rerun_keeps_every_shard_byte_and_draws_the_same_sheet(official_run,
                                                                 official_sample,
                                                                 sample_release, tmp_path):
    out, _ = official_run
    for split, paths in official_shards(out).items():   # the report changed no shard
        want = official_shards(official_sample)[split]
        assert [os.path.basename(p) for p in paths] == [os.path.basename(p) for p in want]
        for mine, theirs in zip(paths, want):
            with open(mine, "rb") as a, open(theirs, "rb") as b:
                assert a.read() == b.read(), mine
    copy = str(tmp_path / "out")
    shutil.copytree(out, copy)
    r = run_cmd(["./build.sh", sample_release[0], "-o", copy, "-j", "0"])
    assert r.returncode == 0, r.stderr
    first, _ = load(out)
    again, _ = load(copy)
    assert again["timing"]["images"] == 0
    assert again["splits"]["train"]["shards_kept"] == 1024
    assert again["classes"]["table"] == first["classes"]["table"]

    def drawn(data):
        return [(os.path.basename(e["shard"]), e["record"], e["sha256"])
                for e in data["contact_sheet"]["images"]]
    assert drawn(again) == drawn(first)


def test_slim_report_has_the_class_text(slim_release, tmp_path):
    d = str(tmp_path / "imagenet")
    shutil.copytree(slim_release[0], d)
    r = run_cmd(["slim/download_and_convert_imagenet.sh", d, "-j", "0"])
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "report: %s (data: report.json)" % os.path.join(d, "report.html"))
    data, page = load(d)
    assert data["format"]["name"] == "slim" and len(data["format"]["features"]) == 15
    assert data["source"]["kind"] == "tar"
    names = texts()
    entries = data["contact_sheet"]["images"]
    assert len(entries) == 24
    for entry in entries:
        feats = shard_records(entry["shard"])[entry["record"]]
        assert entry["record_text"] == one(feats, "image/class/text")
        assert entry["text"] == entry["record_text"] == names[entry["synset"]] != ""
    records = all_records(sorted(glob.glob(os.path.join(d, "train-*-of-*"))))
    counts = Counter(one(f, "image/class/synset") for f in records)
    assert {r["synset"]: r["train"] for r in data["classes"]["table"]
            if r["train"]} == dict(counts)
    assert all(r["text"] for r in data["classes"]["table"])
    assert "record says" not in page     # the records' text is the shipped one


def verify(capsys, *args):
    code = cli_verify.main(list(args) + ["-j", "0"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_verify_report_ok_then_problems(capsys, official_run, sample_release, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(official_run[0], out)
    code, stdout, err = verify(capsys, "official", out, "--source", sample_release[0])
    assert code == 0, err
    assert stdout.rstrip().endswith("OK: all 1152 shards check out")
    assert err.strip().splitlines()[-1] == (
        "report: %s (data: verify-report.json)" % os.path.join(out, "verify-report.html"))
    data, page = load(out, "verify-report")
    conversion, _ = load(out)
    assert data["kind"] == "verify" and data["status"] == "OK" and data["problems"] == []
    assert data["classes"]["table"] == conversion["classes"]["table"]
    assert data["source"]["kind"] == "tar"
    assert [s["stage"] for s in data["timing"]["stages"]] == ["plan", "re-read"]
    assert ">OK<" in page and len(sheet_images(page)) == 24
    victim = next(p for p in official_shards(out)["train"] if os.path.getsize(p))
    with open(victim, "r+b") as f:
        f.seek(os.path.getsize(victim) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, _, err = verify(capsys, "official", out)
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-2].startswith("report: ") and lines[-1].startswith("verify.sh: error: ")
    data, page = load(out, "verify-report")
    assert data["status"] == "problems" and len(data["problems"]) == 1
    assert victim in data["problems"][0] and "CRC" in data["problems"][0]
    assert not data["classes"]["counted"]
    assert "1 problem<" in page and victim in data["contact_sheet"]["skipped"][0]


def test_an_unwritable_report_is_one_warning(official_run, sample_release, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(official_run[0], out)
    os.remove(os.path.join(out, "report.json"))
    os.mkdir(os.path.join(out, "report.json"))     # cannot be replaced by a file
    r = run_cmd(["./build.sh", sample_release[0], "-o", out, "-j", "0"])
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 1 and "run report was not written" in warned[0]
    assert "report: " not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("done: ")
    assert not os.path.exists(os.path.join(out, "report.html"))   # no stale half


# --------------------------------------------------------------------------- Chromium

def chromium(*args, timeout=120):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not on PATH (Debian: apt-get install chromium)")
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--no-first-run"] + list(args),
                          capture_output=True, timeout=timeout)


def test_the_page_renders_in_chromium(official_run, tmp_path, tf):
    out, _ = official_run
    data, page = load(out)
    profile = "--user-data-dir=" + str(tmp_path / "profile")
    shot = str(tmp_path / "report.png")
    chromium(profile, "--screenshot=" + shot, "--window-size=1200,2000",
             "file://" + os.path.join(out, "report.html"))
    assert os.path.getsize(shot) > 20000
    with open(shot, "rb") as f:
        pixels = tf.io.decode_png(f.read(), channels=3).numpy()
    assert pixels.shape == (2000, 1200, 3)
    colours = Counter(map(bytes, pixels.reshape(-1, 3)))
    assert len(colours) > 1000                      # text, tables and 24 images
    assert colours.most_common(1)[0][1] < 0.8 * pixels.shape[0] * pixels.shape[1]
    # every image decoded: a script (added to a copy) writes each naturalWidth
    probe = str(tmp_path / "probe.html")
    with open(probe, "w", encoding="utf-8") as f:
        f.write(page.replace("</body>", (
            "<script>addEventListener('load', function () {"
            "document.querySelectorAll('img.sheet-image').forEach(function (i) {"
            "i.setAttribute('data-natural-width', i.naturalWidth)});"
            "document.body.setAttribute('data-probed', '1')});</script></body>")))
    r = chromium(profile, "--virtual-time-budget=10000", "--dump-dom", "file://" + probe)
    dom = r.stdout.decode("utf-8", "replace")
    assert 'data-probed="1"' in dom, r.stderr.decode("utf-8", "replace")[-2000:]
    widths = [int(img["data-natural-width"]) for img in sheet_images(dom)]
    assert widths == [e["width"] for e in data["contact_sheet"]["images"]]
    assert all(w > 0 for w in widths)


# --------------------------------------------------------------------------- gs://

def test_a_bucket_output_gets_its_report_beside_the_local_index(sample_release, tmp_path,
                                                                monkeypatch):
    pytest.importorskip("gcp_storage_emulator")
    pytest.importorskip("google.cloud.storage")
    from gcs_emulator import Emulator
    monkeypatch.setenv("ILSVRC_INDEX_DIR", str(tmp_path / "index"))
    emu = Emulator().start()
    try:
        emu.bucket("report-bucket")
        r = run_cmd(["./build.sh", sample_release[0], "-o", "gs://report-bucket/out",
                     "-j", "0"])
        assert r.returncode == 0, r.stderr
        objects = {name: data for name, (data, _) in
                   emu.objects("report-bucket", "out/").items()}
    finally:
        emu.stop()
    where = str(tmp_path / "index" / "reports" / "report-bucket" / "out")
    assert r.stderr.strip().splitlines()[-1].startswith(
        "report: %s (data: report.json; " % os.path.join(where, "report.html"))
    assert not [n for n in objects if "report" in n]
    data, page = load(where)
    assert data["splits"]["train"]["records"] == 30
    assert data["splits"]["train"]["shard_bytes"]["total"] == sum(
        len(v) for k, v in objects.items() if k.startswith("out/train-"))
    for img, entry in zip(sheet_images(page), data["contact_sheet"]["images"]):
        assert entry["shard"].startswith("gs://report-bucket/out/")
        blob = objects[entry["shard"][len("gs://report-bucket/"):]]
        payload = list(tfrecord.read_records(io.BytesIO(blob)))[entry["record"]]
        assert base64.b64decode(img["src"].partition(",")[2]) == \
            features.decode(payload)["image/encoded"][1][0]
