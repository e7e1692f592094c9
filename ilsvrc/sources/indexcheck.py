"""The source index header's shape: every field indexfile.dumps writes, of its kind,
checked before any is used, so that a hand-edited header (a key removed or renamed,
a list for an object, a wrong type) is refused in one line naming the field."""

import json
import re


class Invalid(Exception):
    """A value of the header unlike what dumps() writes (indexfile makes it a
    BadIndex naming the file and the fix)."""


_WANT = {   # what a header value must be: (test, words for the message)
    "count": (lambda v: type(v) is int and v >= 0, "a whole number >= 0"),
    "flag": (lambda v: type(v) is bool, "true or false"),
    "text": (lambda v: type(v) is str, "a string"),
    "dict": (lambda v: type(v) is dict, "an object"),
    "path": (lambda v: v is None or (type(v) is str and v != ""), "a path or null"),
    "ints": (lambda v: type(v) is list and v != [] and all(type(x) is int for x in v),
             "a list of whole numbers"),
    "sha256": (lambda v: type(v) is str and re.fullmatch("[0-9a-f]{64}", v) is not None,
               "a SHA-256 in hex"),
}
# {key: shape}: an object with exactly these keys (KEY? optional); {"*": shape}: an
# object of any keys; [shape]: a list; (shape, ...): a list of that many; "kind": the
# name of a container class.
SHAPE = {
    "format": "text", "version": "count", "meta": "dict", "created": "text",
    "host": "text", "stats": {"*": "ints"},
    "body": {"raw_bytes": "count", "bytes": "count", "sha256": "sha256"},
    "listings": [{"split": "text", "count": "count", "inner_tars": "flag",
                  "files_flat": "flag", "root": "path", "root_relative": "flag",
                  "containers": [("text", "flag", "kind")], "columns": ("count",) * 6,
                  "side_files?": {"*": ("text", "count", "count")}}],
}


def show(value):
    """A header value as JSON, cut to 40 characters."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fits(value, shape, kinds):
    """(whether `value` has the outer form of `shape`, the words for that form)."""
    if shape == "kind":
        return type(value) is str and value in kinds, \
            "a container kind (%s)" % ", ".join(sorted(kinds))
    if isinstance(shape, str):
        return _WANT[shape][0](value), _WANT[shape][1]
    if isinstance(shape, dict):
        return type(value) is dict, "an object"
    if isinstance(shape, list):
        return type(value) is list, "a list"
    return type(value) is list and len(value) == len(shape), "a list of %d" % len(shape)


def check(value, shape, name, kinds):
    """Invalid naming the first part of `value` unlike `shape` (see SHAPE)."""
    ok, words = _fits(value, shape, kinds)
    if not ok:
        raise Invalid("%s is %s, not %s" % (name, show(value), words))
    if isinstance(shape, (list, tuple)):
        for k, item in enumerate(value):
            check(item, shape[0 if isinstance(shape, list) else k], "%s[%d]" % (name, k),
                  kinds)
    elif isinstance(shape, dict) and "*" in shape:
        for key, item in value.items():
            check(item, shape["*"], "%s[%s]" % (name, show(key)), kinds)
    elif isinstance(shape, dict):
        for key in shape:
            if not key.endswith("?") and key not in value:
                raise Invalid("%s has no %r" % (name, key))
        for key in sorted(value):
            if key not in shape and key + "?" not in shape:
                raise Invalid("%s has an unknown key %r" % (name, key))
            check(value[key], shape.get(key) or shape[key + "?"], "%s.%s" % (name, key),
                  kinds)


def header(value, version, kinds):
    """Invalid unless the parsed JSON header `value` is one of index `version` with
    every field dumps() writes, of its kind; `kinds`: the container class names."""
    check(value, SHAPE, "header", kinds)
    if value["format"] != "ilsvrc-source-index" or value["version"] != version:
        raise Invalid("header.format, .version are %s, %s, not \"ilsvrc-source-index\", "
                      "%d" % (show(value["format"]), value["version"], version))
    for key in value["stats"]:
        if key[:4] not in ("rel:", "abs:"):
            raise Invalid("header.stats key %s starts with neither rel: nor abs:"
                          % show(key))


def columns(entry, names, groups, cols, name):
    """Invalid unless a listing's decoded columns agree with its header `entry`:
    names and groups lists of strings, every column `count` long, group and
    container ids in range."""
    for what, got in (("names", names), ("groups", groups)):
        if type(got) is not list or not all(type(x) is str for x in got):
            raise Invalid("%s.columns do not cut its %s apart" % (name, what))
    n = entry["count"]
    if not all(len(c) == n for c in [names] + list(cols)):
        raise Invalid("%s.count is %d, its columns hold %s" % (
            name, n, "/".join(str(len(c)) for c in [names] + list(cols))))
    gid, cid = cols[0], cols[1]
    if len(set(groups)) != len(groups) or (n and max(gid) >= len(groups)) or \
            (n and not -1 <= min(cid) <= max(cid) < len(entry["containers"])):
        raise Invalid("%s.containers or .columns do not match its columns" % name)
