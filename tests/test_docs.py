"""The user docs run as written: every ```sh block of README.md, docs/*.md and the other
READMEs runs on generated data and prints what the ```output block after it shows; the
pages keep to their conventions (tests/doc_commands.py, which also lists the paths this
test substitutes and the commands it does not run), name only files that exist and
carry no project history."""

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

import doc_commands as dc
from conftest import REPO

FENCE = re.compile(r"^( *)```(\S*)[ \t]*$")


def pages():
    out = []
    for pattern in dc.PAGES:
        out += sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, pattern)))
    return out


def blocks(page):
    """[(language, text, first line number)] of the fenced blocks of a page."""
    out, lines, k = [], open(os.path.join(REPO, page), encoding="utf-8").read().split("\n"), 0
    while k < len(lines):
        m = FENCE.match(lines[k])
        if not m:
            k += 1
            continue
        indent, lang, start, body = len(m.group(1)), m.group(2), k + 1, []
        k += 1
        while k < len(lines) and not re.match(r"^ *```\s*$", lines[k]):
            body.append(lines[k][indent:] if lines[k][:indent].isspace() else lines[k])
            k += 1
        assert k < len(lines), "%s:%d: a fence that is never closed" % (page, start)
        out.append((lang, "\n".join(body), start))
        k += 1
    return out


def commands(text):
    """The logical lines of a shell block (continuations joined), comments dropped."""
    out, current = [], ""
    for line in text.split("\n"):
        current += line
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip() and not current.strip().startswith("#"):
            out.append(current)
        current = ""
    return out


def not_run(command):
    for start, reason in dc.NOT_RUN.items():
        if command.strip().startswith(start):
            return start
    return None


def substitute(text, root):
    """The docs' paths replaced, in one pass (a replacement is never replaced again)."""
    places = dict(dc.PLACES)
    pattern = r"(?<![\w./-])(%s)" % "|".join(re.escape(p) for p in places)
    return re.sub(pattern, lambda m: places[m.group(1)].format(root=root), text)


def runs(page):
    """[(sh block, its output block or None, line)] of a page."""
    out, bs = [], blocks(page)
    for i, (lang, text, line) in enumerate(bs):
        if lang == "sh":
            nxt = bs[i + 1] if i + 1 < len(bs) else None
            shown = nxt[1] if nxt and nxt[0] == "output" else None
            out.append((text, shown, line))
    return out


RUN_PAGES = [p for p in pages() if runs(p)]


# --- the conventions -------------------------------------------------------------------

@pytest.mark.parametrize("page", pages())
def test_page_keeps_the_conventions(page):
    text = open(os.path.join(REPO, page), encoding="utf-8").read()
    bs = blocks(page)
    for i, (lang, _, line) in enumerate(bs):
        assert lang in dc.LANGUAGES, "%s:%d: fence language %r (use one of %s)" % (
            page, line, lang, ", ".join(dc.LANGUAGES))
        if lang == "output":
            assert i and bs[i - 1][0] == "sh", \
                "%s:%d: an output block must follow an sh block" % (page, line)
    prose = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    for k, line in enumerate(prose.split("\n"), 1):
        assert not re.match(r"^\s+\$ \S", line), \
            "%s: an indented `$ command` example; use an sh block: %r" % (page, line)
    for pattern in dc.NOT_FOR_USERS:
        m = re.search(pattern, text)
        assert not m, "%s: %r is project history, not for users" % (page, m.group(0))


@pytest.mark.parametrize("page", pages())
def test_links_and_named_files_exist(page):
    text = open(os.path.join(REPO, page), encoding="utf-8").read()
    here = os.path.dirname(os.path.join(REPO, page))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = os.path.normpath(os.path.join(here, target.split("#")[0]))
        assert os.path.exists(path), "%s: link to %s, which does not exist" % (page, target)
    for lang, body, line in blocks(page):
        if lang != "sh":
            continue
        for cmd in commands(body):
            first = cmd.split()[0]
            if "/" in first and not first.startswith(("/", "$")):
                assert os.path.exists(os.path.join(REPO, first)), \
                    "%s:%d: %s is not in the repository" % (page, line, first)


def test_every_command_not_run_is_still_documented():
    seen = set()
    for page in pages():
        for text, _, _ in runs(page):
            seen.update(filter(None, map(not_run, commands(text))))
    unused = sorted(set(dc.NOT_RUN) - seen)
    assert not unused, "entries of NOT_RUN that no page's sh block needs: %s" % unused


# --- running them ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The generated data of every page (copied for each): {place under root: path}."""
    from ilsvrc import shipped
    from ilsvrc.testing import hfsample, sample
    base = tmp_path_factory.mktemp("docs-data")
    release = str(base / "imagenet")
    manifest = sample.generate(release, bbox=True)
    # the validation images labelled as the shipped 50,000-line file labels them (what
    # the release's own conversion uses when no synset_labels.txt is there), so every
    # copy converts to the same records and metalhead/prepare.py's check passes
    manifest["val"] = shipped.read_lines(shipped.VAL_LABELS_FILE)[:len(manifest["val"])]
    kaggle = str(base / "kaggle")
    _kaggle_zip(release, manifest, kaggle)
    hf = str(base / "hf-imagenet")
    labels = os.path.join(release, "synset_labels.txt")
    with open(labels, "w") as f:
        f.write("".join(s + "\n" for s in manifest["val"]))
    try:
        hfsample.write(release, hf, "parquet")
    finally:
        os.remove(labels)
    return {"data/imagenet": release, "shared/imagenet": release,
            "data/kaggle": kaggle, "data/hf-imagenet": hf}


def _kaggle_zip(release, manifest, out):
    import kaggle_copy
    os.makedirs(out)
    files = [("ILSVRC/Data/CLS-LOC/" + n.split("ILSVRC/Data/CLS-LOC/", 1)[1], d)
             for n, d in kaggle_copy.release_files(release)]
    loc = kaggle_copy.loc_files(manifest["val"])
    loc["LOC_train_solution.csv"] = "ImageId,PredictionString\n"
    loc["LOC_sample_submission.csv"] = "ImageId,PredictionString\n"
    kaggle_copy.write_zip(os.path.join(out, "imagenet-object-localization-challenge.zip"),
                          sorted(loc.items()) + files)


def _environment(root):
    venv_bin = os.path.join(REPO, ".venv", "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and os.path.realpath(p) != os.path.realpath(venv_bin))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("HF_")}
    env.update(PATH=path, HOME=os.path.join(root, "home"), ILSVRC_PROGRESS_EVERY="0")
    return env


class Services:
    """The storage emulator and the fake Hub a page needs, started for it alone."""

    def __init__(self, text, root, data, env):
        self.stack = []
        if "gs://" in text:
            from gcs_emulator import Emulator
            emu = Emulator().start()
            self.stack.append(emu.stop)
            for bucket in ("my-data", "my-records"):
                emu.bucket(bucket)
            release = data["data/imagenet"]
            emu.upload_dir("my-data", "ilsvrc2012/", release, sorted(os.listdir(release)))
            env.update(STORAGE_EMULATOR_HOST=emu.url, GOOGLE_CLOUD_PROJECT="test-project")
        if "download.sh hf" in text:
            import fakehub
            files = {"README.md": b"# ImageNet\n",
                     ".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
            hf = data["data/hf-imagenet"]
            for dirpath, _, names in os.walk(hf):
                for n in names:
                    p = os.path.join(dirpath, n)
                    files[os.path.relpath(p, hf)] = open(p, "rb").read()
            hub = fakehub.FakeHub({"1" * 40: files}, {"main": "1" * 40}, "hf_docs").start()
            self.stack.append(hub.stop)
            env.update(HF_ENDPOINT=hub.url, HF_TOKEN="hf_docs",
                       HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="*", no_proxy="*")

    def stop(self):
        while self.stack:
            self.stack.pop()()


def _shown_in(shown, output, root):
    """The lines of `shown` appear in `output` in order (`…` matches any text)."""
    at = 0
    lines = output.split("\n")
    for want in substitute(shown, root).split("\n"):
        if not want.strip():
            continue
        pattern = re.compile(".*".join(re.escape(p.strip()) for p in want.split("…")))
        while at < len(lines) and not pattern.search(lines[at]):
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


@pytest.mark.parametrize("page", RUN_PAGES)
def test_page_commands_run_as_written(page, data, tmp_path):
    root = str(tmp_path)
    for place, src in data.items():
        shutil.copytree(src, os.path.join(root, place))
    for d in ("tmp", "home"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    env = _environment(root)
    page_runs = runs(page)
    services = Services("\n".join(t for t, _, _ in page_runs), root, data, env)
    try:
        for text, shown, line in page_runs:
            script = "\n".join(": not run" if not_run(c) else c for c in commands(text))
            script = substitute(script, root)
            r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=600, stdin=subprocess.DEVNULL)
            output = r.stdout           # stdout and stderr as a terminal shows them
            assert r.returncode == 0, "%s:%d: exit %d\n%s\n---\n%s" % (
                page, line, r.returncode, script, output[-4000:])
            assert "Traceback" not in output, "%s:%d:\n%s" % (page, line, output[-4000:])
            if shown is not None:
                missing = _shown_in(shown, output, root)
                assert missing is None, "%s:%d: the doc shows %r, the command printed:\n%s" % (
                    page, line, missing, output[-4000:])
    finally:
        services.stop()
