"""Read the change records in patches/*.patch, patches/upstream.lock and
patches/required.txt.  Standard library only.  The formats are described in
patches/README.md.

    records.parse_file("patches/download_imagenet.sh.patch") -> [record, ...]

A record is a dict with the fields as strings (continuation lines joined with
"\\n") plus bookkeeping keys: "_file", "_line" (where the record starts) and
"_lines" (field name -> line number).  Anything malformed raises RecordError
whose message starts with "FILE:LINE:".
"""

import configparser
import os
import re
from collections import namedtuple

REQUIRED_FIELDS = ("id", "upstream", "breaks", "port", "where", "test")
OPTIONAL_FIELDS = ("spec", "note")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
TODO = "TODO"

_FIELD_RE = re.compile(r"^([a-z]+):(.*)$")
_ID_RE = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Za-z0-9]+)*$")
_UPSTREAM_RE = re.compile(
    r"^(?P<repo>[\w.-]+/[\w.-]+)\s+(?P<path>\S+)\s*@\s*(?P<commit>[0-9a-f]{7,40})"
    r"\s*:\s*(?P<line>\?|\d+(?:-\d+)?)$")
_TEST_RE = re.compile(r"^(tests/[\w/.-]+\.py)::(\w+)$")

Upstream = namedtuple("Upstream", "repo path commit first last")
"""first/last: 1-based inclusive line range in the file at `commit`; None for "?"."""


class RecordError(ValueError):
    pass


def parse_upstream(value):
    """'owner/name path @ commit : 58' (or '58-60', or '?') -> Upstream."""
    m = _UPSTREAM_RE.match(" ".join(value.split()))
    if not m:
        raise ValueError("expected 'owner/name path @ commit : LINE' "
                         "(LINE = N, N-M or ?), got %r" % value)
    line = m.group("line")
    if line == "?":
        first = last = None
    else:
        a, _, b = line.partition("-")
        first, last = int(a), int(b or a)
        if first < 1 or last < first:
            raise ValueError("bad line range %r" % line)
    return Upstream(m.group("repo"), m.group("path"), m.group("commit"), first, last)


def split_ids(value):
    """'A4, DAR-num-threads' -> ['A4', 'DAR-num-threads']."""
    return [tok for tok in re.split(r"[\s,]+", value.strip()) if tok]


def parse_tests(value):
    """The test field -> [(file, function), ...]; [] when it is TODO."""
    toks = split_ids(value)
    if toks == [TODO]:
        return []
    out = []
    for tok in toks:
        m = _TEST_RE.match(tok)
        if not m:
            raise ValueError("expected TODO or tests/FILE.py::test_name, got %r" % tok)
        out.append((m.group(1), m.group(2)))
    return out


def covers(ids, wanted):
    """Does a record with these ids cover the required item `wanted`?
    'A14' is covered by 'A14' and by sub-items such as 'A14-credentials'."""
    return any(i == wanted or i.startswith(wanted + "-") for i in ids)


def _check(rec, filename):
    where = "%s:%d" % (filename, rec["_line"])
    missing = [f for f in REQUIRED_FIELDS if not rec.get(f)]
    if missing:
        raise RecordError("%s: record lacks field(s): %s" % (where, ", ".join(missing)))

    def fail(field, msg):
        raise RecordError("%s:%d: %s: %s" % (filename, rec["_lines"][field], field, msg))

    ids = split_ids(rec["id"])
    for i in ids:
        if not _ID_RE.match(i):
            fail("id", "bad id %r (want e.g. P1, A14-credentials, DOC-L58)" % i)
    try:
        parse_upstream(rec["upstream"])
    except ValueError as exc:
        fail("upstream", exc)
    try:
        parse_tests(rec["test"])
    except ValueError as exc:
        fail("test", exc)


def parse_text(text, filename="<string>"):
    records, rec, field = [], None, None

    def close():
        if rec is not None:
            for key in FIELDS:
                if key in rec:
                    rec[key] = rec[key].strip()
            _check(rec, filename)
            records.append(rec)

    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if line.startswith("#"):
            continue
        if not line:
            close()
            rec, field = None, None
            continue
        if line[0] in " \t":
            if field is None:
                raise RecordError("%s:%d: continuation line outside a field" % (filename, no))
            rec[field] += "\n" + line.strip()
            continue
        m = _FIELD_RE.match(line)
        if not m:
            raise RecordError("%s:%d: expected 'field: value', got %r" % (filename, no, line))
        field, value = m.group(1), m.group(2).strip()
        if field not in FIELDS:
            raise RecordError("%s:%d: unknown field %r (known: %s)"
                              % (filename, no, field, ", ".join(FIELDS)))
        if rec is None:
            rec = {"_file": filename, "_line": no, "_lines": {}}
        if field in rec:
            raise RecordError("%s:%d: field %r given twice in one record" % (filename, no, field))
        rec[field] = value
        rec["_lines"][field] = no
    close()

    seen = {}
    for r in records:
        for i in split_ids(r["id"]):
            if i in seen:
                raise RecordError("%s:%d: id %s already used at line %d"
                                  % (filename, r["_lines"]["id"], i, seen[i]))
            seen[i] = r["_lines"]["id"]
    return records


def parse_file(path):
    with open(path, encoding="utf-8") as fh:
        return parse_text(fh.read(), path)


def load_dir(directory):
    """{'download_imagenet.sh': [records...], ...} for every *.patch in directory."""
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".patch"):
            out[name[:-len(".patch")]] = parse_file(os.path.join(directory, name))
    return out


# ---------------------------------------------------------------- upstream.lock

def load_lock(path):
    """{section: {'repo', 'path', 'commit', 'spec', 'provenance': [dict, ...]}}"""
    cp = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",),
                                   inline_comment_prefixes=("#",))
    with open(path, encoding="utf-8") as fh:
        cp.read_file(fh, path)
    lock = {}
    for name in cp.sections():
        sec = cp[name]
        for key in ("repo", "path", "commit"):
            if not sec.get(key):
                raise RecordError("%s: [%s] lacks %r" % (path, name, key))
        if not re.fullmatch(r"[0-9a-f]{40}", sec["commit"]):
            raise RecordError("%s: [%s] commit must be 40 hex digits" % (path, name))
        prov = []
        for line in sec.get("provenance", "").splitlines():
            parts = line.split(None, 5)
            if not parts:
                continue
            if len(parts) < 5 or parts[3] != "@":
                raise RecordError("%s: [%s] bad provenance line %r" % (path, name, line))
            prov.append({"spec": parts[0], "repo": parts[1], "path": parts[2],
                         "commit": parts[4], "note": parts[5] if len(parts) > 5 else ""})
        lock[name] = {"repo": sec["repo"], "path": sec["path"], "commit": sec["commit"],
                      "spec": sec.get("spec", ""), "provenance": prov}
    return lock


def set_lock_commit(path, section, new_commit):
    """Rewrite the commit of one section in place, keeping comments and layout."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines(keepends=True)
    current, done = None, False
    for i, line in enumerate(lines):
        m = re.match(r"^\[(.+)\]\s*$", line)
        if m:
            current = m.group(1)
        elif current == section and re.match(r"^commit\s*=", line):
            lines[i] = "commit = %s\n" % new_commit
            done = True
            break
    if not done:
        raise RecordError("%s: no commit line in section [%s]" % (path, section))
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)


# ---------------------------------------------------------------- required.txt

def load_required(path):
    """'FILE: ID ID ...' lines (a file may appear on several lines) ->
    {file: [ids in order]}.  '#' starts a comment."""
    out = {}
    with open(path, encoding="utf-8") as fh:
        for no, line in enumerate(fh, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, rest = line.partition(":")
            if not sep or not name.strip():
                raise RecordError("%s:%d: expected 'FILE: ID ...'" % (path, no))
            out.setdefault(name.strip(), []).extend(split_ids(rest))
    return out
