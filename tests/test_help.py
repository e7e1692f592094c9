"""What `--help` says, for every front end a newcomer may run.

(a) Each front end's --help exits 0 and lists every flag it accepts: for an argparse
    front end every action of its parser, for an absl script every flag its own
    module defines and every engine flag (ilsvrc/cli/options.py) it takes.  A Python
    script is started with a plain `python3` (it restarts itself in .venv).
(b) No sentence of 8 words or more appears in the help of two different commands,
    except the option table's text of one flag shown by both.
(c) What ./verify.sh --help states as its defaults is what verify does, and it says
    nothing that is only true of a converter.
Help texts carry no internal history either (issue numbers, decision ids).

The parser of a front end is read in a child process that runs it with
argparse's parse_args (or absl's app.run) replaced by a dump of what it defines.
"""

import json
import os
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from conftest import REPO
from ilsvrc import pool, shipped
from ilsvrc.cli import options
from ilsvrc.cli import slim as cli_slim
from ilsvrc.cli import verify as cli_verify
from ilsvrc.formats import slim
from ilsvrc.sources import cached, discover, val_labels

VENV_PY = os.path.join(REPO, ".venv", "bin", "python")
SYSTEM = (shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
          or shutil.which("python3"))

# name: (the command before --help, how to dump its parser, flags a shell or
# positional-argument front end takes).  A dump is ("-m", module, args...) or
# ("script", path).
FRONT_ENDS = {
    "build.sh": (["./build.sh"], ("-m", "ilsvrc.cli.build"), None),
    "verify.sh": (["./verify.sh"], ("-m", "ilsvrc.cli.verify"), None),
    "download.sh": (["./download.sh"], None, ["hf", "kaggle", "-h", "--help"]),
    "download.sh hf": (["./download.sh", "hf"], ("-m", "ilsvrc.cli.download"), None),
    "download_and_convert_imagenet.sh": (["slim/download_and_convert_imagenet.sh"],
                                         ("-m", "ilsvrc.cli.slim", "convert"), None),
    "download_imagenet.sh": (["slim/datasets/download_imagenet.sh"],
                             ("-m", "ilsvrc.cli.slim", "extract"), None),
    "python -m ilsvrc.cli.index": ([VENV_PY, "-m", "ilsvrc.cli.index"],
                                   ("-m", "ilsvrc.cli.index"), None),
    "metalhead/download.sh": (["metalhead/download.sh"], None, ["DIR", "-h", "--help"]),
}
SCRIPTS = ["official/imagenet_to_gcs.py", "slim/datasets/build_imagenet_data.py",
           "metalhead/prepare.py", "bench/run.py", "bench/floor.py", "bench/gcs.py",
           "bench/hfcopy.py", "bench/index_scale.py", "bench/outofcache.py",
           "bench/tasks.py"]
POSITIONAL = {"slim/datasets/preprocess_imagenet_validation_data.py":
              ["VALIDATION_DIR", "LABELS_FILE", "-h", "--help"],
              "slim/datasets/process_bounding_boxes.py":
              ["ANNOTATIONS", "SYNSETS_FILE", "-h", "--help"]}
for _path in SCRIPTS:
    FRONT_ENDS[_path] = ([SYSTEM, _path], ("script", _path), None)
for _path, _flags in POSITIONAL.items():
    FRONT_ENDS[_path] = ([SYSTEM, _path], None, _flags)

DUMP = r'''
import argparse, json, os, runpy, sys
OUT = os.environ["HELP_DUMP"]

def write(data):
    with open(OUT, "w") as f:
        json.dump(data, f)
    os._exit(0)

def dump_parser(self, args=None, namespace=None):
    def text(a):
        return self._get_formatter()._expand_help(a) if a.help else ""
    write({"kind": "argparse", "description": self.description or "",
           "epilog": self.epilog or "",
           "actions": [{"flags": a.option_strings, "dest": a.dest,
                        "metavar": a.metavar if isinstance(a.metavar, str) else None,
                        "suppressed": a.help == argparse.SUPPRESS, "help": text(a),
                        "option": getattr(a, "option", None)} for a in self._actions]})

argparse.ArgumentParser.parse_args = dump_parser
try:
    from absl import app, flags
except ImportError:
    app = None
if app is not None:
    def dump_absl(main, argv=None, **kw):
        by_module = flags.FLAGS.flags_by_module_dict()
        write({"kind": "absl", "description": sys.modules["__main__"].__doc__ or "",
               "flags": [{"name": f.name, "help": f.help, "engine": module != sys.argv[0]}
                         for module in (sys.argv[0], "ilsvrc.cli.options")
                         for f in by_module.get(module, [])]})
    app.run = dump_absl
if sys.argv[1] == "-m":
    sys.argv = [sys.argv[2]] + sys.argv[3:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = [sys.argv[2]]
    runpy.run_path(sys.argv[0], run_name="__main__")
raise SystemExit("the front end defined no parser")
'''


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["COLUMNS"] = "1000"      # one line per help text: nothing wrapped
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def helps():
    """{name: CompletedProcess of `COMMAND --help`}."""
    if SYSTEM is None:
        pytest.skip("no python3 on PATH")
    if not os.path.exists(VENV_PY):
        pytest.skip("this checkout has no .venv")
    return {name: subprocess.run(cmd + ["--help"], cwd=REPO, env=_env(),
                                 capture_output=True, text=True, timeout=120)
            for name, (cmd, _, _) in FRONT_ENDS.items()}


@pytest.fixture(scope="module")
def parsers(tmp_path_factory):
    """{name: what the front end's parser defines (DUMP)} for those that have one."""
    if not os.path.exists(VENV_PY):
        pytest.skip("this checkout has no .venv")
    out = {}
    for name, (_, dump, _) in FRONT_ENDS.items():
        if dump is None:
            continue
        path = str(tmp_path_factory.mktemp("dump") / "parser.json")
        how = list(dump) if dump[0] == "-m" else ["script", dump[1]]
        r = subprocess.run([VENV_PY, "-c", DUMP] + how, cwd=REPO, capture_output=True,
                           text=True, timeout=120,
                           env=_env(HELP_DUMP=path, PYTHONPATH=REPO))
        assert r.returncode == 0 and os.path.exists(path), (name, r.stderr)
        with open(path) as f:
            out[name] = json.load(f)
    return out


# --------------------------------------------------------------------------- (a)

def _shown(flag, text):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text) is not None


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
def test_help_exits_0_and_lists_every_flag(name, helps, parsers):
    r = helps[name]
    assert r.returncode == 0, (name, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout.strip(), (name, r.stderr)
    text = r.stdout
    dump = parsers.get(name)
    if dump is None:
        missing = [f for f in FRONT_ENDS[name][2] if not _shown(f, text)]
    elif dump["kind"] == "argparse":
        assert not [a["dest"] for a in dump["actions"] if a["suppressed"]], name
        missing = [f for a in dump["actions"]
                   for f in (a["flags"] or [a["metavar"] or a["dest"]])
                   if not _shown(f, text)]
        assert all(a["help"] for a in dump["actions"] if a["flags"]), \
            (name, [a["flags"] for a in dump["actions"] if not a["help"]])
    else:
        assert any(f["engine"] for f in dump["flags"]), name
        missing = ["--" + f["name"] for f in dump["flags"]
                   if not re.search(r"^  (?:-\S+,)?--(?:\[no\])?%s: " % f["name"], text,
                                    re.M)]
    assert not missing, "%s --help does not list %s" % (name, missing)


def test_absl_help_also_takes_h_and_helpfull(helps):
    for args in (["-h"], ["--helpshort"], ["--helpfull"]):
        r = subprocess.run([SYSTEM, "official/imagenet_to_gcs.py"] + args, cwd=REPO,
                           env=_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "--num_workers" in r.stdout, (args, r.stderr)
        assert ("--flagfile:" in r.stdout) == (args == ["--helpfull"])


def test_download_sh_kaggle_help_is_metalhead_download_help(helps):
    r = subprocess.run(["./download.sh", "kaggle", "--help"], cwd=REPO, env=_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == helps["metalhead/download.sh"].stdout


# --------------------------------------------------------------------------- (b)

def _pieces(name, helps, parsers):
    """(text, option) pieces of what `name --help` says: option is the absl name of
    the option table entry a text comes from, else None."""
    dump = parsers.get(name)
    if dump is None:      # the help option's own line is every command's
        return [(re.sub(r"(?m)^\s*-h, --help\b.*$", "", helps[name].stdout), None)]
    if dump["kind"] == "absl":
        return [(dump["description"], None)] + [
            (f["help"], f["name"] if f["engine"] else None) for f in dump["flags"]]
    return [(dump["description"], None), (dump["epilog"], None)] + [
        (a["help"], a["option"]) for a in dump["actions"]]


def _blocks(text):
    """Paragraphs: a blank line or a line indented less than the one before (the
    end of an indented item) ends one."""
    blocks, lines, indent = [], [], 0
    for line in text.splitlines() + [""]:
        here = len(line) - len(line.lstrip())
        if not line.strip() or here < indent:
            blocks.append(" ".join(lines))
            lines = []
        if line.strip():
            lines.append(line.strip())
        indent = here
    return blocks


def sentences(text):
    """The sentences of 8 words or more of a text, normalised."""
    out = []
    for paragraph in _blocks(text):
        for s in re.split(r"(?<=[.;!?])\s+", paragraph):
            words = s.lower().rstrip(".;:!?,").split()
            if len(words) >= 8:
                out.append(" ".join(words))
    return out


def test_no_sentence_is_copied_between_commands(helps, parsers):
    seen = {}
    for name in FRONT_ENDS:
        for text, option in _pieces(name, helps, parsers):
            for s in sentences(text):
                seen.setdefault(s, set()).add((name, option))
    copied = {}
    for s, where in seen.items():
        names = {n for n, _ in where}
        tags = {o for _, o in where}
        if len(names) > 1 and not (len(tags) == 1 and None not in tags):
            copied[s] = sorted(where, key=str)
    assert not copied, "\n".join("%r: %s" % item for item in copied.items())


def test_option_table_entries_share_no_sentence():
    owner = {}
    for role in options.ROLES:
        for absl in (False, True):
            for name, text in options.texts(role, absl).items():
                for s in sentences(text):
                    assert owner.setdefault(s, name) == name, (s, name, owner[s])


HISTORY = re.compile(r"\bissues?\b|#\d+|\bthe seed\b|"
                     r"(?<![\w.])(?:[A-Z]{1,3}|DOC-L|DAR)-?\d{1,3}\b")
NOT_HISTORY = {"MD5", "SHA-256", "UTF-8", "OUT1", "OUT2"}


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
def test_help_carries_no_internal_history(name, helps):
    found = [m.group(0) for m in HISTORY.finditer(helps[name].stdout)
             if m.group(0) not in NOT_HISTORY]
    assert not found, (name, found)


# --------------------------------------------------------------------------- (c)

def _verify_actions(parsers):
    return {a["dest"]: a for a in parsers["verify.sh"]["actions"]}


class Planned(Exception):
    pass


def _planner_arguments(tmp_path, monkeypatch, *extra):
    """What ./verify.sh official OUT --source SRC hands the planner."""
    out, src = tmp_path / "out", tmp_path / "src"
    for d in (out, src / "train", src / "validation"):
        d.mkdir(parents=True)
    got = {}

    def planner(*args):
        got["args"] = args
        raise Planned()
    monkeypatch.setitem(cli_verify.PLANNERS, "official", planner)
    with pytest.raises(Planned):
        cli_verify.run(["official", str(out), "--source", str(src), "-j", "0", *extra],
                       out=open(os.devnull, "w"), log=open(os.devnull, "w"))
    source, out_dir, _, labels, num_threads, custom, index_file = got["args"]
    return SimpleNamespace(source=source, out=out_dir, labels=labels,
                           num_threads=num_threads, custom=custom, index_file=index_file)


def test_verify_states_which_defaults(parsers):
    stated = {dest for dest, a in _verify_actions(parsers).items()
              if "default" in a["help"]}
    # each one is checked against the code below; a new one needs its own check
    assert stated == {"workers", "labels", "num_threads", "index"}, stated


def test_verify_default_workers(parsers):
    text = _verify_actions(parsers)["workers"]["help"]
    assert "default: one per CPU core, here %d;" % pool.default_workers() in text
    assert "0 = all in this process" in text
    assert cli_verify.parse(["official", "x"]).workers == pool.default_workers()
    assert cli_verify.parse(["official", "x", "-j", "0"]).workers == 0


def test_verify_default_labels(parsers, tmp_path, monkeypatch):
    text = _verify_actions(parsers)["labels"]["help"]
    rule = re.search(r"\(default: synset_labels\.txt in (\w+), else the Kaggle copy's "
                     r"LOC_val_solution\.csv, else the shipped (\S+)\)", text)
    assert rule and text.startswith("with --source: "), text
    source_dir = next(a for a in parsers["verify.sh"]["actions"]
                      if "--source" in a["flags"])
    assert rule.group(1) == source_dir["metavar"]                 # the --source DIR
    assert rule.group(2) == os.path.basename(shipped.VAL_LABELS_FILE)
    # verify hands the planner no label file of its own ...
    assert _planner_arguments(tmp_path, monkeypatch).labels is None
    # the rule's order: DIR/synset_labels.txt, the Kaggle copy's file, the shipped one
    top = tmp_path / "labels"
    top.mkdir()
    kaggle_file = SimpleNamespace(rows={}, path="LOC_val_solution.csv")
    monkeypatch.setattr(val_labels, "_from_tree", lambda *a: kaggle_file)
    tar = discover.Source("tar", "t", "v", str(top))
    kaggle = discover.Source("kaggle", "t", "v", str(top))
    assert val_labels.choose(tar, None, val_labels.LOCAL_NAME).path == \
        shipped.VAL_LABELS_FILE
    assert val_labels.choose(kaggle, None, val_labels.LOCAL_NAME) is kaggle_file
    first = shipped.read_lines(shipped.SYNSETS_FILE)[0]
    (top / "synset_labels.txt").write_text(first + "\n")
    for source in (tar, kaggle):
        assert val_labels.choose(source, None, val_labels.LOCAL_NAME).path == \
            str(top / "synset_labels.txt")


def test_verify_planners_follow_the_label_rule(tmp_path, monkeypatch):
    """Without --labels both of verify's planners ask val_labels.choose for
    DIR/synset_labels.txt (the rule checked above)."""
    asked = []

    def choose(source, explicit, local_name, *args, **kw):
        asked.append((source.root, explicit, local_name))
        raise Planned()
    monkeypatch.setattr(val_labels, "choose", choose)
    listings = (SimpleNamespace(), SimpleNamespace(side_files=None))
    monkeypatch.setattr(cached, "listings", lambda *args, **kw: listings)
    source = discover.Source("tar", "t", "v", str(tmp_path))
    assert set(cli_verify.PLANNERS) == {"official", "slim"}
    for planner in cli_verify.PLANNERS.values():
        with pytest.raises(Planned):
            planner(source, str(tmp_path), None, None)
    assert asked == [(str(tmp_path), None, "synset_labels.txt")] * 2


def test_verify_default_num_threads(parsers, tmp_path, monkeypatch):
    text = _verify_actions(parsers)["num_threads"]["help"]
    assert "default 8;" in text and "slim with --source" in text
    assert _planner_arguments(tmp_path, monkeypatch).num_threads == 8
    # 8 is what the slim converters write with unless told otherwise
    assert slim.NUM_THREADS == 8 and cli_slim._parse_convert(["x"]).num_threads == 8


def test_verify_default_index(parsers, tmp_path, monkeypatch):
    text = _verify_actions(parsers)["index"]["help"]
    assert text.startswith("with --source: ")
    assert "(default: ilsvrc-source.index in OUT_DIR when it exists; for a gs:// " \
           "OUT_DIR, in the local cache directory)" in text
    got = _planner_arguments(tmp_path, monkeypatch)
    assert got.index_file == os.path.join(got.out, cached.DEFAULT_NAME)
    assert cached.DEFAULT_NAME == "ilsvrc-source.index"
    assert cached.index_path(None, "gs://b/p").startswith(
        os.path.join(cached.index_dir(), ""))
    named = str(tmp_path / "named.index")
    open(named, "w").close()
    assert _planner_arguments(tmp_path / "2", monkeypatch, "--index", named).index_file \
        == named


def test_verify_help_says_nothing_only_true_of_a_converter(helps):
    text = helps["verify.sh"].stdout
    for phrase in ("--index-only", "--index_only", "writes task", "label range",
                   "tf_records", "--extract", "--no-verify", "--check ", "unpack"):
        assert phrase not in text, phrase
    assert "re-reads task I's share" in text
