"""Check an unpacked Metalhead ImageNet tree against the standard ILSVRC2012 lists.

Beyond the lists: every training image must sit in the folder of the synset its name
carries, and LOC_train_solution.csv / LOC_val_solution.csv are cross-checked against the
files present; the result line says full or partial.

verify(out, synsets_path, labels_path, expect_full) prints a short report and returns
the exit status; problems a user must fix raise Failure (the engine's UserError) with
a one-line message.  Standard library only.
"""
import csv
import os
import re
import sys

FULL = {"train": 1281167, "val": 50000, "test": 100000}
CLASSES = 1000
CLS_LOC = ("ILSVRC", "Data", "CLS-LOC")
SYNSET = re.compile(r"^n\d{8}$")
VAL_FILE = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$")
VAL_ID = re.compile(r"^ILSVRC2012_val_(\d{8})$")
TEST_FILE = re.compile(r"^ILSVRC2012_test_(\d{8})\.JPEG$")
TRAIN_FILE = re.compile(r"^(n\d{8})_\d+\.JPEG$")
TRAIN_ID = re.compile(r"^(n\d{8})_\d+$")
SHOW = 5  # examples listed per kind of finding


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ilsvrc.errors import UserError as Failure  # noqa: E402  (one line, exit status 1)


def read_list(path, what, option):
    try:
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise Failure("cannot read the %s %s (%s): pass its path with %s." % (what, path, e.strerror, option))


def shipped_lists(synsets_path, labels_path):
    synsets = read_list(synsets_path, "synset list", "--synsets")
    if len(synsets) != CLASSES or len(set(synsets)) != CLASSES or not all(map(SYNSET.match, synsets)):
        raise Failure("%s should hold %d distinct synsets (nXXXXXXXX), one a line: pass the "
                      "standard list with --synsets." % (synsets_path, CLASSES))
    labels = read_list(labels_path, "validation label list", "--val-labels")
    known = set(synsets)
    if len(labels) != FULL["val"] or not known.issuperset(labels):
        raise Failure("%s should hold %d synsets from %s, one a line: pass the standard file with "
                      "--val-labels." % (labels_path, FULL["val"], synsets_path))
    return synsets, labels


def check_mapping(out, synsets, synsets_path):
    path = os.path.join(out, "LOC_synset_mapping.txt")
    if not os.path.isfile(path):
        raise Failure("%s is missing: rerun prepare.py with the Kaggle archive (it ships that file)." % path)
    ids = [line.split()[0] for line in read_list(path, "synset mapping", "--out")]
    unknown = sorted(set(ids) - set(synsets))
    if unknown:
        raise Failure("%s names %s, which is not among the %d synsets of %s: the archive is not the "
                      "ILSVRC2012 CLS-LOC release; download it again." % (path, unknown[0], CLASSES, synsets_path))
    if len(ids) != CLASSES or len(set(ids)) != CLASSES:
        lacking = sorted(set(synsets) - set(ids))
        raise Failure("%s lists %d classes (%d distinct), expected %d%s: the file is damaged; "
                      "rerun prepare.py with a fresh download." % (
                          path, len(ids), len(set(ids)), CLASSES,
                          " (missing %s)" % ", ".join(lacking[:SHOW]) if lacking else ""))
    if ids != synsets:
        raise Failure("%s is not in the standard class order of %s: class indices would differ; "
                      "rerun prepare.py with a fresh download." % (path, synsets_path))
    return path


def solution_rows(path, what):
    """(line number, row) of a Kaggle ImageId,PredictionString file, blank lines skipped;
    a missing file or header is a Failure (`what`: what the file ships)."""
    if not os.path.isfile(path):
        raise Failure("%s is missing: rerun prepare.py with the Kaggle archive (it ships the "
                      "%s in that file)." % (path, what))
    with open(path, newline="") as f:
        reader = csv.reader(f)
        if next(reader, None) != ["ImageId", "PredictionString"]:
            raise Failure("%s does not start with the header ImageId,PredictionString: the file is "
                          "damaged; rerun prepare.py with a fresh download." % path)
        for row in reader:
            if row:
                yield reader.line_num, row


def read_solution(out, known):
    """LOC_val_solution.csv as {image number: synset}."""
    path = os.path.join(out, "LOC_val_solution.csv")
    labels = {}
    for lineno, row in solution_rows(path, "validation labels"):
        match = VAL_ID.match(row[0]) if len(row) == 2 else None
        synset = row[1].split()[0] if match and row[1].split() else None
        number = int(match.group(1)) if match else 0
        if synset not in known or not 1 <= number <= FULL["val"] or number in labels:
            raise Failure("%s line %d is not a valid, new 'ILSVRC2012_val_NNNNNNNN,<synset> ...' "
                          "row: the file is damaged; rerun prepare.py with a fresh download."
                          % (path, lineno))
        labels[number] = synset
    return path, labels


def read_train_solution(out, known):
    """LOC_train_solution.csv as {ImageId: [box labels]}; the ImageId names its synset."""
    path = os.path.join(out, "LOC_train_solution.csv")
    rows = {}
    for lineno, row in solution_rows(path, "training boxes"):
        match = TRAIN_ID.match(row[0]) if len(row) == 2 else None
        tokens = row[1].split() if match else []
        if not match or not tokens or len(tokens) % 5 or match.group(1) not in known \
                or row[0] in rows:
            raise Failure("%s line %d is not a valid, new '<synset>_<n>,<synset> x y x y ...' "
                          "row of one of the %d classes: the file is damaged; rerun "
                          "prepare.py with a fresh download." % (path, lineno, CLASSES))
        rows[row[0]] = tokens[0::5]
    return path, rows


def list_dir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def scan(out, known, solution):
    """Count images per split and class; collect extras and inconsistencies."""
    root = os.path.join(out, *CLS_LOC)
    rel = lambda *p: "/".join(CLS_LOC + p)
    found = {"train": 0, "val": 0, "test": 0}
    per_class, extras, problems, train_names, val_numbers = {}, [], [], set(), set()
    for entry in list_dir(os.path.join(root, "train")):
        folder = os.path.join(root, "train", entry)
        if not os.path.isdir(folder):
            extras.append(rel("train", entry))
            continue
        if entry not in known:
            problems.append("%s is not one of the %d classes" % (rel("train", entry), CLASSES))
            continue
        names = list_dir(folder)
        images = []
        for n in names:
            match = TRAIN_FILE.match(n)
            if match and match.group(1) == entry:
                images.append(n)
            elif match:
                problems.append("%s is an image of %s (its name) filed under %s: move it to "
                                "train/%s/" % (rel("train", entry, n), match.group(1), entry,
                                               match.group(1)))
            else:
                extras.append(rel("train", entry, n))
        train_names.update("%s/%s" % (entry, n[:-len(".JPEG")]) for n in images)
        per_class[entry] = len(images)
        found["train"] += len(images)
    for name in list_dir(os.path.join(root, "val")):
        match = VAL_FILE.match(name)
        if not match or not 1 <= int(match.group(1)) <= FULL["val"]:
            extras.append(rel("val", name))
            continue
        found["val"] += 1
        val_numbers.add(int(match.group(1)))
        if int(match.group(1)) not in solution:
            problems.append("%s has no row in LOC_val_solution.csv" % rel("val", name))
    for name in list_dir(os.path.join(root, "test")):
        if TEST_FILE.match(name):
            found["test"] += 1
        else:
            extras.append(rel("test", name))
    return found, per_class, extras, problems, train_names, val_numbers


def train_listed(out):
    """The training images named in ImageSets/CLS-LOC/train_cls.txt, when the archive has it."""
    path = os.path.join(out, "ILSVRC", "ImageSets", "CLS-LOC", "train_cls.txt")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return {line.split()[0] for line in f if line.strip()}


def some(items):
    items = list(items)
    more = " ... (%d more)" % (len(items) - SHOW) if len(items) > SHOW else ""
    return ", ".join(str(i) for i in items[:SHOW]) + more



def _say(text):
    print(text, flush=True)


def _summary(out, mapping, solution, solution_path, train_rows, train_path, found,
             per_class, synsets_path, labels_path):
    """The first lines of the report: what was found, class by class and split by split."""
    say = _say
    say("verify %s" % out)
    say("  classes     %d synsets in %s, same list and order as %s"
        % (CLASSES, os.path.basename(mapping), synsets_path))
    say("  val labels  %d rows in %s, all equal to %s" % (len(solution), os.path.basename(solution_path), labels_path))
    say("  train boxes %d rows in %s, each of a class folder" % (len(train_rows), os.path.basename(train_path)))
    counts = sorted(per_class.values())
    say("  train       %d images in %d of %d classes%s" % (
        found["train"], sum(1 for c in counts if c), CLASSES,
        " (%d to %d per class)" % (counts[0], counts[-1]) if counts else ""))
    say("  val         %d images" % found["val"])
    say("  test        %d images" % found["test"])


def _missing(out, synsets, found, per_class, train_names, unlisted_train, absent_val,
             solution):
    """What the copy lacks against the whole release, one phrase each."""
    missing = []
    listed = train_listed(out)
    if listed is not None:
        lacking = sorted(listed - train_names)
        if lacking:
            missing.append("%d train images listed in train_cls.txt (%s)" % (len(lacking), some(lacking)))
    empty = [s for s in synsets if not per_class.get(s)]
    if empty:
        missing.append("%d classes without train images (%s)" % (len(empty), some(empty)))
    for split in ("train", "val", "test"):
        if found[split] < FULL[split]:
            missing.append("%d of %d %s images" % (FULL[split] - found[split], FULL[split], split))
    if unlisted_train:
        missing.append("%d train images listed in LOC_train_solution.csv (%s)"
                       % (len(unlisted_train), some(unlisted_train)))
    if absent_val:
        missing.append("%d validation images listed in LOC_val_solution.csv (e.g. "
                       "ILSVRC2012_val_%08d.JPEG)" % (len(absent_val), absent_val[0]))
    unlabelled = sorted(set(range(1, FULL["val"] + 1)) - set(solution))
    if unlabelled:
        missing.append("%d validation labels in LOC_val_solution.csv (e.g. ILSVRC2012_val_%08d)"
                       % (len(unlabelled), unlabelled[0]))
    return missing

def verify(out, synsets_path, labels_path, expect_full=False):
    out = os.path.abspath(out)
    synsets, shipped = shipped_lists(synsets_path, labels_path)
    known = set(synsets)
    mapping = check_mapping(out, synsets, synsets_path)
    solution_path, solution = read_solution(out, known)
    disagree = [n for n in sorted(solution) if solution[n] != shipped[n - 1]]
    if disagree:
        n = disagree[0]
        raise Failure("%s disagrees with %s on %d image(s), e.g. ILSVRC2012_val_%08d: %s here, %s "
                      "there: the archive is damaged; rerun prepare.py with a fresh download."
                      % (solution_path, labels_path, len(disagree), n, solution[n], shipped[n - 1]))
    train_path, train_rows = read_train_solution(out, known)
    found, per_class, extras, problems, train_names, val_numbers = scan(out, known, solution)
    unlisted_train = sorted(i for i in train_rows
                            if "%s/%s" % (TRAIN_ID.match(i).group(1), i) not in train_names)
    other_boxes = sorted(i for i, labels in train_rows.items()
                         if any(b != TRAIN_ID.match(i).group(1) for b in labels))
    absent_val = sorted(n for n in solution if n not in val_numbers)

    say = _say
    _summary(out, mapping, solution, solution_path, train_rows, train_path, found,
             per_class, synsets_path, labels_path)
    missing = _missing(out, synsets, found, per_class, train_names, unlisted_train,
                       absent_val, solution)
    for text in missing:
        say("  missing     " + text)
    if extras:
        say("  extra       %d unexpected files (%s)" % (len(extras), some(extras)))
    if other_boxes:
        say("  note        %d rows of LOC_train_solution.csv have boxes labelled with another "
            "synset than the image's (%s); readers that take the class from the boxes "
            "(FluxDistributed.jl) skip or mislabel them" % (len(other_boxes), some(other_boxes)))
    for text in problems[:SHOW]:
        say("  problem     " + text)

    if problems:
        raise Failure("%s is inconsistent (%d problem(s), first: %s): remove the stray entries or "
                      "unpack a fresh download into an empty --out." % (out, len(problems), problems[0]))
    if expect_full and (missing or extras):
        raise Failure("%s is not the complete release (--expect-full): %s; rerun prepare.py with the "
                      "complete archive to fill it in." % (out, (missing or ["extra files present"])[0]))
    if missing:
        say("result: partial: consistent, but not the whole release (pass --expect-full to "
            "require it)")
    else:
        say("result: full: the complete ILSVRC2012 release, as Metalhead reads it%s"
            % (" (plus the %d unexpected files above)" % len(extras) if extras else ""))
    return 0
