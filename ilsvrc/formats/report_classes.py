"""The report's classes: records per class in each split (from the listings the plan
was made from, else from the planned items), each class's label and text, and what
is missing or outside the ILSVRC2012 release's range (732..1300 training and 50
validation images per class)."""

from collections import Counter

from ilsvrc import contract, plan, shipped

PER_CLASS = {"train": (732, 1300), "validation": (50, 50)}


def class_counts(splits, listings=None, options=None):
    """({prefix: {synset: records}}, {synset: label} or None): from the listings
    the plan was made from where they say it at once (every image under its
    synset, or a flat validation set with its label lines), else from every
    planned item (slower: ~10-20 us each)."""
    by_split = dict(zip(("train", "validation"), listings or ()))
    counts, labels = {}, None
    for s in splits:
        got = _listing_counts(by_split.get(s.prefix), options or {})
        if got is None or sum(got.values()) != s.count:
            got, labels = _item_counts(s, labels)
        counts[s.prefix] = got
    return counts, labels


def _listing_counts(listing, options):
    if listing is None:
        return None
    if "" not in listing.group_names:
        groups = Counter(listing.group)
        return {listing.group_names[g]: n for g, n in groups.items()}
    if options.get("label_lines") and len(listing.group_names) == 1:
        try:
            synsets = plan.validation_synsets(sorted(listing.names),
                                              options["label_lines"],
                                              options.get("label_file", ""))
        except ValueError:
            return None
        return dict(Counter(synsets))
    return None


def _item_counts(split, labels):
    counts, labels = Counter(), dict(labels or {})
    for j in range(split.count):
        feats = split.item(j).features
        synset = feats["image/class/synset"][1][0].decode("utf-8", "replace")
        counts[synset] += 1
        labels.setdefault(synset, feats["image/class/label"][1][0])
    return dict(counts), labels


def pairs_labels(pairs):
    """{synset: label} of the pairs read back, where each synset has one label."""
    return {s: next(iter(v)) for s, v in (pairs or {}).items() if len(v) == 1}


def plan_labels(splits, per_class, labels=None):
    """{synset: label} of every class counted: `labels` (read back), the rest from
    the planned items, read in plan order until each class has its label (a few
    thousand items in shuffled splits; all of them at worst)."""
    labels = dict(labels or {})
    wanted = set().union(*per_class.values()) - set(labels)
    for split in splits:
        j = 0
        while wanted and j < split.count:
            feats = split.item(j).features
            synset = feats["image/class/synset"][1][0].decode("utf-8", "replace")
            if synset in wanted:
                labels[synset] = feats["image/class/label"][1][0]
                wanted.discard(synset)
            j += 1
    return labels


def class_texts():
    """{synset: text} of the shipped metadata file (synset<TAB>text)."""
    out = {}
    for line in shipped.read_lines(shipped.METADATA_FILE, "metadata file"):
        synset, _, text = line.partition("\t")
        out[synset.strip()] = text.strip()
    return out


def table(per_class, labels, custom):
    """Classes present, their counts and labels, and what is missing or outside the
    release's range, against the contract (1000 classes)."""
    texts = class_texts()
    present = sorted(set().union(*per_class.values()) if per_class else ())
    rows = []
    for synset in present:
        row = {"synset": synset, "label": (labels or {}).get(synset),
               "text": texts.get(synset, "")}
        row.update({p: per_class[p].get(synset, 0) for p in per_class})
        row["outside"] = [p for p in PER_CLASS if p in per_class and not
                          PER_CLASS[p][0] <= row[p] <= PER_CLASS[p][1]]
        rows.append(row)
    missing = [] if custom else sorted(set(contract.official_synsets()) - set(present))
    return {"counted": True, "contract": {"classes": contract.NUM_CLASSES,
                                          "per_class": PER_CLASS},
            "present": len(present), "missing": len(missing),
            "missing_synsets": [{"synset": s, "text": texts.get(s, "")} for s in missing],
            "outside_range": sum(1 for r in rows if r["outside"]), "table": rows}
