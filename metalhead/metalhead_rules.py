#!/usr/bin/env python3
"""The path and label rules of the Julia readers, applied to a prepared OUT: the Python
twin of metalhead/check_layout.jl (same checks, same output, line for line), so that
CI checks the rules where no Julia is installed.

    python3 metalhead/metalhead_rules.py OUT [--val-size N] [--test-size N]

Rules (Metalhead.jl <= 0.5.3 `ImageNet.RawFS("OUT/ILSVRC", :kaggle)`, FluxDistributed.jl,
class-folder readers):
  folders          ILSVRC/Data/CLS-LOC/{train,val,test} exist
  mapping columns  LOC_synset_mapping.txt lines are 'nXXXXXXXX <text>' (Metalhead reads
                   columns 1-9 as the synset and 11- as the text)
  mapping size     1000 distinct synsets
  mapping order    sorted, so line k (Metalhead's label k) is label k of our records
  val labels       LOC_val_solution.csv rows 'ILSVRC2012_val_NNNNNNNN,<synset> ...', a
                   new number in 1..val-size, a synset of the mapping
  val files        each labelled image is at val/ILSVRC2012_val_NNNNNNNN.JPEG
  val names        every file in val/ is such a name and has a row
  val size         images 1..val-size all present (Metalhead's ValData has 50,000)
  test size        test/ILSVRC2012_test_NNNNNNNN.JPEG for 1..test-size (100,000)
  train folders    train/<synset of the mapping>/<synset>_<n>.JPEG only
  train solution   every LOC_train_solution.csv row's image is at
                   train/<synset>/<ImageId>.JPEG (FluxDistributed.jl's rule)
The last line is 'N passed, M failed'; the exit status is 1 when M > 0.
"""
import os
import re
import sys

CLS = "ILSVRC/Data/CLS-LOC"
SYNSET_LINE = re.compile(r"^n[0-9]{8} .")
VAL_ID = re.compile(r"^ILSVRC2012_val_([0-9]{8})$")
VAL_FILE = re.compile(r"^ILSVRC2012_val_([0-9]{8})\.JPEG$")
TRAIN_FILE = re.compile(r"^(n[0-9]{8})_[0-9]+\.JPEG$")
TRAIN_ID = re.compile(r"^(n[0-9]{8})_[0-9]+$")


def read_lines(path):
    """Lines as Julia's readlines gives them (ended by \\n or \\r\\n; no final empty one)."""
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def table(out, name):
    """(problem or None, [(line number, comma-separated fields)]) of the Kaggle
    ImageId,PredictionString file `name` under out, blank lines left out."""
    path = os.path.join(out, name)
    if not os.path.isfile(path):
        return "%s is missing" % name, []
    lines = read_lines(path)
    if not lines or lines[0] != "ImageId,PredictionString":
        return "%s line 1 is not 'ImageId,PredictionString'" % name, []
    return None, [(k, line.split(",")) for k, line in enumerate(lines[1:], 2) if line]


def listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def val_name(n):
    return "ILSVRC2012_val_%08d.JPEG" % n


def check(out, val_size=50000, test_size=100000):
    """[(passed, name, detail)] in the order check_layout.jl prints them."""
    results = []

    def rule(name, problem, fine):
        results.append((problem is None, name, fine if problem is None else problem))

    base = os.path.join(out, *CLS.split("/"))
    missing = [s for s in ("train", "val", "test") if not os.path.isdir(os.path.join(base, s))]
    rule("folders", "missing %s/%s" % (CLS, missing[0]) if missing else None,
         "%s/{train,val,test} are folders" % CLS)
    known = set(_mapping_rules(rule, out))
    _val_rules(rule, out, base, known, val_size, test_size)
    _train_rules(rule, out, base, known)
    return results


def _mapping_rules(rule, out):
    """The synset mapping's rules; its synsets in file order."""
    mapping_path = os.path.join(out, "LOC_synset_mapping.txt")
    synsets = []
    if not os.path.isfile(mapping_path):
        for name in ("mapping columns", "mapping size", "mapping order"):
            rule(name, "LOC_synset_mapping.txt is missing", "")
    else:
        bad = 0
        for k, line in enumerate(read_lines(mapping_path), 1):
            if SYNSET_LINE.match(line):
                synsets.append(line[:9])
            elif not bad:
                bad = k
        rule("mapping columns",
             "LOC_synset_mapping.txt line %d is not 'nXXXXXXXX <text>'" % bad if bad else None,
             "every line is 'nXXXXXXXX <text>'")
        distinct = len(set(synsets))
        rule("mapping size",
             None if distinct == len(synsets) == 1000 else
             "%d lines, %d distinct synsets, expected 1000" % (len(synsets), distinct),
             "1000 distinct synsets")
        rule("mapping order", None if synsets == sorted(synsets) else
             "not in sorted order: Metalhead's label k would not be label k of the records",
             "sorted: line k is label k, as in the records")
    return synsets


def _val_rules(rule, out, base, known, val_size, test_size):
    """Validation labels and files, and the test split's size."""
    problem, lines = table(out, "LOC_val_solution.csv")
    rows = {}
    for k, parts in lines:
        m = VAL_ID.match(parts[0]) if len(parts) == 2 else None
        tokens = parts[1].split() if m else []
        n = int(m.group(1)) if m else 0
        if not tokens or tokens[0] not in known or not 1 <= n <= val_size or n in rows:
            problem = ("LOC_val_solution.csv line %d is not 'ILSVRC2012_val_NNNNNNNN,"
                       "<synset> ...' with a new number in 1..%d and a synset of the "
                       "mapping" % (k, val_size))
            break
        rows[n] = tokens[0]
    rule("val labels", problem, "%d rows, each a new image with a synset of the mapping"
         % len(rows))
    val_dir = os.path.join(base, "val")
    absent = [n for n in sorted(rows) if not os.path.isfile(os.path.join(val_dir, val_name(n)))]
    rule("val files", "%d of %d labelled images are not at Metalhead's path, first %s/val/%s"
         % (len(absent), len(rows), CLS, val_name(absent[0])) if absent else None,
         "all %d labelled images at %s/val/ILSVRC2012_val_NNNNNNNN.JPEG" % (len(rows), CLS))
    odd = []
    for name in listing(val_dir):
        m = VAL_FILE.match(name)
        if not (m and int(m.group(1)) in rows and os.path.isfile(os.path.join(val_dir, name))):
            odd.append(name)
    rule("val names", "%d entries in val/ Metalhead cannot read or label, first %s/val/%s"
         % (len(odd), CLS, odd[0]) if odd else None,
         "every file in val/ is ILSVRC2012_val_NNNNNNNN.JPEG with a row")
    lacking = [n for n in range(1, val_size + 1)
               if not os.path.isfile(os.path.join(val_dir, val_name(n)))]
    rule("val size", "%d of %d images missing (Metalhead's ValData has %d), first %s/val/%s"
         % (len(lacking), val_size, val_size, CLS, val_name(lacking[0])) if lacking else None,
         "all %d validation images present" % val_size)
    test_dir = os.path.join(base, "test")
    lacking = [n for n in range(1, test_size + 1) if not os.path.isfile(
        os.path.join(test_dir, "ILSVRC2012_test_%08d.JPEG" % n))]
    rule("test size", "%d of %d images missing, first %s/test/ILSVRC2012_test_%08d.JPEG"
         % (len(lacking), test_size, CLS, lacking[0]) if lacking else None,
         "all %d test images present" % test_size)


def _train_rules(rule, out, base, known):
    """Training folders and LOC_train_solution.csv."""
    train_dir = os.path.join(base, "train")
    wrong = []
    for entry in listing(train_dir):
        folder = os.path.join(train_dir, entry)
        if entry not in known or not os.path.isdir(folder):
            wrong.append(entry)
            continue
        for name in listing(folder):
            m = TRAIN_FILE.match(name)
            if not (m and m.group(1) == entry):
                wrong.append(entry + "/" + name)
    rule("train folders", "%d entries break train/<synset>/<synset>_<n>.JPEG, first %s/train/%s"
         % (len(wrong), CLS, wrong[0]) if wrong else None,
         "only train/<synset>/<synset>_<n>.JPEG, synsets of the mapping")
    problem, lines = table(out, "LOC_train_solution.csv")
    gone = []
    for k, parts in lines:
        m = TRAIN_ID.match(parts[0]) if len(parts) == 2 else None
        if not m:
            problem = "LOC_train_solution.csv line %d is not '<synset>_<n>,...'" % k
            break
        if not os.path.isfile(os.path.join(train_dir, m.group(1), parts[0] + ".JPEG")):
            gone.append(parts[0])
    if not problem and gone:
        gone.sort()
        problem = ("%d of %d rows have no image at train/<synset>/<ImageId>.JPEG, first "
                   "%s/train/%s/%s.JPEG" % (len(gone), len(lines), CLS,
                                            gone[0].split("_")[0], gone[0]))
    rule("train solution", problem, "all %d rows' images at train/<synset>/<ImageId>.JPEG"
         % len(lines))


def report(results, write=sys.stdout.write):
    for passed, name, detail in results:
        write("%s %s: %s\n" % ("PASS" if passed else "FAIL", name, detail))
    failed = sum(1 for r in results if not r[0])
    write("%d passed, %d failed\n" % (len(results) - failed, failed))
    return 1 if failed else 0


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="metalhead_rules.py", description="Apply the Julia "
                                "readers' path and label rules to a prepared OUT.")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--val-size", type=int, default=50000)
    p.add_argument("--test-size", type=int, default=100000)
    a = p.parse_args(argv)
    return report(check(a.out, a.val_size, a.test_size))


if __name__ == "__main__":
    sys.exit(main())
