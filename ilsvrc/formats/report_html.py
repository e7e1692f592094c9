"""The run report as one self-contained HTML page: inline CSS, the contact sheet's
images as data: URIs, no script and nothing fetched, so it opens anywhere (a copy
mailed, a browser without network)."""

import base64
import html
import os

MAX_PROBLEMS = 200

CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;
 margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:1160px;margin:0 auto;padding:18px 20px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;
 border-bottom:1px solid #d5d9e0;padding-bottom:4px}
.sub{color:#5a6372;font-size:13px;word-break:break-all}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;
 font-size:14px;vertical-align:middle;margin-left:8px;color:#fff}
.ok{background:#1e8e3e}.bad{background:#c5221f}.warn{color:#a05a00}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:14px}
.card{background:#fff;border:1px solid #d5d9e0;border-radius:8px;padding:10px 14px;
 min-width:150px;flex:1}
.card b{display:block;font-size:20px}.card span{color:#5a6372;font-size:12px}
table{border-collapse:collapse;background:#fff;border:1px solid #d5d9e0;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #e6e8ec;text-align:left;
 vertical-align:top}th{background:#eef0f3;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.syn{white-space:nowrap}
table.kv th{width:190px}code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,
 monospace;font-size:12px;word-break:break-all}
.sheet{display:grid;grid-template-columns:repeat(6,1fr);gap:10px}
figure{margin:0;background:#fff;border:1px solid #d5d9e0;border-radius:8px;
 overflow:hidden}
.thumb{height:140px;background:#20242c;display:flex;align-items:center;
 justify-content:center}
.thumb img{width:100%;height:100%;object-fit:contain;display:block}
figcaption{padding:6px 8px;font-size:12px;line-height:1.35}
figcaption .t{font-weight:600;font-size:13px;display:block}
figcaption .m{color:#5a6372;display:block}
details{margin-top:8px}summary{cursor:pointer;color:#1a56c4}
ul.problems li{color:#c5221f}
"""


def esc(value):
    return html.escape("" if value is None else str(value))


def num(value):
    return "—" if value is None else "{:,}".format(value) if isinstance(value, int) \
        else esc(value)


def size(n):
    if n is None:
        return "—"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return "%.1f %s" % (n / scale, unit)
    return "%d B" % n


def render(data, sheet):
    """The page for report data `data` (report.py) and its contact sheet."""
    kind = "verify report" if data["kind"] == "verify" else "conversion report"
    parts = [_header(data, kind), _cards(data)]
    if data["kind"] == "verify":
        parts.append(_problems(data))
    parts += [_sheet(sheet), _split_table(data), _classes(data["classes"]),
              _timing(data["timing"]), _checks(data), _run(data)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width\">"
            "<title>%s: %s</title><style>%s</style></head><body><main>\n%s\n"
            "</main></body></html>\n" % (esc(kind), esc(data["output"]), CSS,
                                         "\n".join(parts)))


def _header(data, kind):
    ok = data["status"] == "OK"
    badge = '<span class="badge %s">%s</span>' % (
        "ok" if ok else "bad", "OK" if ok else "%d problem%s" % (
            len(data.get("problems", ())), "" if len(data.get("problems", ())) == 1
            else "s"))
    return ('<h1>ILSVRC2012 %s, %s format%s</h1><div class="sub">%s &middot; '
            'written %s by %s %s (commit %s)</div>'
            % (esc(kind), esc(data["format"]["name"]), badge, esc(data["output"]),
               esc(data["created"]), esc(data["tool"]["name"]),
               esc(data["tool"]["version"]), esc(data["tool"]["commit"][:12])))


def _classes_line(c):
    if not c.get("counted"):
        return "not counted", "classes (needs --source)"
    if c["missing"] or not c["present"]:
        return "%d of %d" % (c["present"], c["contract"]["classes"]), "classes present"
    return num(c["present"]), "classes present (all)"


def _cards(data):
    splits, t = data["splits"], data["timing"]
    cards = [(num(s["records"]), "%s records (release: %s)" % (p, num(s["release"])))
             for p, s in splits.items()]
    cards.append(_classes_line(data["classes"]))
    cards.append(("%.1f s" % t["total_seconds"], "elapsed, all stages"))
    if not t["images"]:
        cards.append(("none", "images written now (every shard kept)"
                      if t["busy_stage"] == "write" else "records re-read"))
    elif t["images_per_second"] is not None:
        cards.append(("%s img/s" % num(t["images_per_second"]),
                      "%s MB/s in the %s stage" % (num(t["mb_per_second"]),
                                                   t["busy_stage"])))
    return '<div class="cards">%s</div>' % "".join(
        '<div class="card"><b>%s</b><span>%s</span></div>' % (b, esc(s))
        for b, s in cards)


def _problems(data):
    out = ["<h2>Problems</h2>"]
    if data["problems"]:
        shown = data["problems"][:MAX_PROBLEMS]
        out.append('<ul class="problems">%s</ul>' % "".join(
            "<li><code>%s</code></li>" % esc(p) for p in shown))
        if len(data["problems"]) > len(shown):
            out.append("<p>... and %d more (all of them in the .json file)</p>"
                       % (len(data["problems"]) - len(shown)))
    else:
        out.append("<p>None: every shard checks out.</p>")
    if data.get("warnings"):
        out.append('<ul class="warn">%s</ul>' % "".join(
            "<li>%s</li>" % esc(w) for w in data["warnings"]))
    return "".join(out)


def _figure(e):
    src = "data:%s;base64,%s" % (e["mime"], base64.b64encode(e["image"]).decode())
    shard = os.path.basename(e["shard"])
    clash = ""
    if e["record_text"] is not None and e["record_text"] != e["text"]:
        clash = '<span class="m warn">record says: %s</span>' % esc(e["record_text"])
    return ('<figure><div class="thumb"><img class="sheet-image" src="%s" alt="%s" '
            'data-shard="%s" data-record="%d" data-sha256="%s"></div><figcaption>'
            '<span class="t">%s</span>%s<span class="m">label %s &middot; %s</span>'
            '<span class="m mono">%s</span><span class="m">%s #%d &middot; %s&times;%s'
            ' &middot; %s</span></figcaption></figure>'
            % (src, esc(e["filename"]), esc(e["shard"]), e["record"], e["sha256"],
               esc(e["text"] or "(no text for this synset)"), clash, esc(e["label"]),
               esc(e["synset"]), esc(e["filename"]), esc(shard), e["record"],
               esc(e["width"]), esc(e["height"]), size(e["bytes"])))


def _sheet(sheet):
    head = ("<h2>Contact sheet</h2><p>%d records drawn at random (seed %d) from %d "
            "shard%s read back from the output (%s records read); the class text is "
            "the shipped metadata's for the record's synset.</p>"
            % (len(sheet["images"]), sheet["seed"], len(sheet["read"]),
               "" if len(sheet["read"]) == 1 else "s", num(sheet["seen"])))
    skipped = "".join('<p class="warn">skipped: %s</p>' % esc(s)
                      for s in sheet["skipped"])
    return head + skipped + '<div class="sheet">%s</div>' % "".join(
        _figure(e) for e in sheet["images"])


def _spread(s, fmt=num):
    return "—" if not s else "%s / %s / %s" % (fmt(s["min"]), fmt(s["median"]),
                                              fmt(s["max"]))


def _split_table(data):
    rows = []
    for prefix, s in data["splits"].items():
        share = "" if not s["release"] else " (%.2f %%)" % (100.0 * s["records"] /
                                                           s["release"])
        rows.append("<tr><td>%s</td><td class=n>%s</td><td class=n>%s%s</td>"
                    "<td class=n>%s / %s</td><td class=n>%s</td><td class=n>%s</td>"
                    "<td class=n>%s</td><td class=n>%s</td></tr>"
                    % (esc(prefix), num(s["records"]), num(s["release"]), share,
                       num(s["shards_present"]), num(s["shards"]),
                       num(s["nonempty_shards"]), _spread(s["shard_bytes"], size),
                       _spread(s["records_per_shard"]),
                       size(s["shard_bytes"]["total"]) if s["shard_bytes"] else "—"))
    return ("<h2>Records and shards</h2><table><tr><th>split</th><th class=n>records"
            "</th><th class=n>release</th><th class=n>shards present</th><th class=n>"
            "non-empty</th><th class=n>shard size min / median / max</th><th class=n>"
            "records per shard min / median / max</th><th class=n>total</th></tr>%s"
            "</table>" % "".join(rows))


def _class_rows(table, splits, per_class):
    return "".join(
        "<tr><td class=\"mono syn\">%s</td><td class=n>%s</td><td>%s</td>%s"
        "<td class=warn>%s</td></tr>" % (esc(r["synset"]), num(r["label"]),
                                          esc(r["text"]), "".join(
            "<td class=n>%s</td>" % num(r.get(p)) for p in splits), esc(", ".join(
                "%s %s %s" % (p, "below" if r[p] < per_class[p][0] else "above",
                              _range(per_class[p])) for p in r["outside"])))
        for r in table)


def _range(bounds):
    lo, hi = bounds
    return str(lo) if lo == hi else "%d..%d" % (lo, hi)


def _classes(c):
    if not c.get("counted"):
        return "<h2>Classes</h2><p>%s</p>" % esc(c.get("why"))
    splits = [p for p in ("train", "validation") if any(p in r for r in c["table"])]
    line = "%d of %d classes present" % (c["present"], c["contract"]["classes"])
    if c["missing"]:
        line += ", %d missing" % c["missing"]
    per_class = c["contract"]["per_class"]
    line += ("; the release has %s training and %s validation images per class: %d "
             "class%s here outside that" % (
                 _range(per_class["train"]), _range(per_class["validation"]),
                 c["outside_range"], "" if c["outside_range"] == 1 else "es"))
    table = ("<table><tr><th>synset</th><th class=n>label</th><th>class text</th>%s"
             "<th>against the release</th></tr>%s</table>"
             % ("".join("<th class=n>%s</th>" % esc(p) for p in splits),
                _class_rows(c["table"], splits, per_class)))
    if len(c["table"]) > 60:
        table = "<details><summary>all %d classes</summary>%s</details>" % (
            len(c["table"]), table)
    missing = ""
    if c["missing"]:
        missing = ("<details><summary>the %d missing classes</summary><p class=mono>"
                   "%s</p></details>" % (c["missing"], "<br>".join(
                       "%s %s" % (esc(m["synset"]), esc(m["text"]))
                       for m in c["missing_synsets"])))
    return "<h2>Classes</h2><p>%s.</p>%s%s" % (esc(line), table, missing)


STAGES = {"index": "reading the source: its listings and labels (from the start)",
          "plan": "planning the shards (verify: rebuilding the plan from --source)",
          "write": "writing every shard, each read back and checked by its worker",
          "verify": "shards kept from an earlier run re-read; the label contract",
          "re-read": "every shard re-read and checked"}


def _timing(t):
    rows = "".join("<tr><td>%s</td><td class=n>%.2f s</td><td>%s</td></tr>"
                   % (esc(s["stage"]), s["seconds"], esc(STAGES.get(s["stage"], "")))
                   for s in t["stages"])
    speed = ("<p>Nothing written: every shard was kept from an earlier run.</p>"
             if t["busy_stage"] == "write" else "<p>No records.</p>")
    if t["images"] and t["images_per_second"] is not None:
        speed = ("<p>%s: %s images, %s in %s: %s images/s, %s MB/s.</p>"
                 % (esc(t["busy_stage"]), num(t["images"]), size(t["bytes"]),
                    esc(t["busy_stage"]), num(t["images_per_second"]),
                    num(t["mb_per_second"])))
    return ("<h2>Time</h2><table><tr><th>stage</th><th class=n>seconds</th><th>what"
            "</th></tr>%s<tr><th>total</th><th class=n>%.2f s</th><th></th></tr></table>"
            "%s" % (rows, t["total_seconds"], speed))


def _checks(data):
    c = data["checks"]
    extra = "".join("<li>%s</li>" % esc(x) for x in c.get("extras", ()))
    return "<h2>How the records were checked</h2><p>%s%s.</p>%s" % (
        esc(c["how"]), "" if not c.get("image_check") else
        "; images checked: --check %s" % esc(c["image_check"]),
        "<ul>%s</ul>" % extra if extra else "")


def _run(data):
    tool, cmd, src = data["tool"], data["command"], data["source"]
    rows = [("command", "<code>%s</code>" % esc(cmd["line"])),
            ("output", "<code>%s</code>" % esc(data["output"])),
            ("source", "<code>%s</code> (%s)" % (esc(src["directory"] or "not read"),
                                                 esc(src["kind"] or "—"))),
            ("validation labels", "<code>%s</code>" % esc(src["validation_labels"]
                                                          or "—")),
            ("tool", "%s %s, commit <code>%s</code>%s" % (
                esc(tool["name"]), esc(tool["version"]), esc(tool["commit"]),
                " (with local changes)" if tool["modified"] else "")),
            ("machine", "%s, Python %s, %s" % (esc(tool["host"]), esc(tool["python"]),
                                               esc(tool["platform"]))),
            ("started / written", "%s / %s" % (esc(data["started"]),
                                               esc(data["created"]))),
            ("options", "<code>%s</code>" % esc(", ".join(
                "%s=%s" % kv for kv in cmd["options"].items())))]
    return "<h2>Run</h2><table class=kv>%s</table>" % "".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (esc(k), v) for k, v in rows)
