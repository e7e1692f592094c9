"""The ILSVRC2012 input contract (what a synset, a label file, a class name and a
validation image name must be), checked before any shard is written and again by verify.

Pure functions apart from reading the label files they are given.  Every violation
is a UserError of one line naming the input (file and line, or archive and member)
and the fix.  Rules:
  * a synset is `n` followed by 8 digits;
  * the 1000 ILSVRC2012 synsets are the shipped, sorted, duplicate-free list;
  * a label file has one synset per line; a UTF-8 byte order mark and CR line ends
    are accepted, a blank line or a line with anything else is an error;
  * training classes (inner tars, directories) are named by synsets;
  * a synset outside the 1000 is an error unless the run allows a custom class set
    (`--allow-custom-classes` / `--allow_custom_classes`), which then says its
    label range;
  * validation images are either all `ILSVRC2012_val_<8 digits>.JPEG` (labelled by
    number) or none are (labelled by position), never a mix.
"""

import functools
import re

from ilsvrc import shipped
from ilsvrc.errors import UserError

SYNSET = re.compile(r"n[0-9]{8}")
NUM_CLASSES = 1000
VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})\.JPEG")
# Image-like names: refused where they are not planned, never silently left out.
IMAGE_LIKE = re.compile(r".*\.(jpe?g|jpe|png|gif|bmp|webp|tiff?)", re.IGNORECASE)
CUSTOM_ARG, CUSTOM_FLAG = "--allow-custom-classes", "--allow_custom_classes"
BOM = "\ufeff"
# No ILSVRC2012 image comes near this; a member claiming more is refused before
# anything is read or inflated (memory per worker stays bounded).
MAX_IMAGE_BYTES = 256 << 20


class ContractError(UserError):
    pass


def is_synset(name):
    return SYNSET.fullmatch(name) is not None


def _shipped_synsets_file():
    return shipped.SYNSETS_FILE


@functools.lru_cache(maxsize=None)
def official_synsets(path=None):
    """The 1000 ILSVRC2012 synsets, sorted; the shipped file is checked to be exactly
    that (1000 valid, unique lines in sorted order)."""
    path = path or _shipped_synsets_file()
    lines = read_synset_file(path, "synsets file", known=None)
    if len(lines) != NUM_CLASSES or lines != sorted(set(lines)):
        raise ContractError("%s must list the %d ILSVRC2012 synsets once each in sorted "
                            "order (it has %d lines, %d distinct). Restore it from the "
                            "checkout (git checkout -- %s)."
                            % (path, NUM_CLASSES, len(lines), len(set(lines)), path))
    return tuple(lines)


def official_labels():
    """{synset: 1 + its position among the sorted 1000}."""
    return {s: k + 1 for k, s in enumerate(official_synsets())}


CUSTOM_HINT = ", or pass %s (%s for the absl scripts) to convert a custom class set" % (
    CUSTOM_ARG, CUSTOM_FLAG)


def check_known(synset, where, allow_custom=False):
    """Raise unless `synset` is one of the 1000 (or custom class sets are allowed)."""
    if not allow_custom and synset not in _official_set():
        raise ContractError("%s: %s is not one of the 1000 ILSVRC2012 synsets (%s). "
                            "Fix the name%s." % (where, synset, _shipped_synsets_file(),
                                                 CUSTOM_HINT))


@functools.lru_cache(maxsize=None)
def _official_set():
    return frozenset(official_synsets())


def _looks_like_csv(line):
    return "," in line or line.lower().startswith(("imageid", "image_id"))


def read_synset_file(path, what="validation label file", known=True, allow_custom=False):
    """Synsets of a one-synset-per-line file, in file order.

    A BOM and CRs are stripped; an empty file, a blank line or a line holding anything
    but a synset is an error naming the file and line.  `known`: also require every
    synset to be one of the 1000 (unless `allow_custom`); None: syntax only.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise ContractError("cannot read %s %s: %s" % (what, path, err.strerror or err))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ContractError("%s %s is not UTF-8 text (%s at byte %d); give a file with "
                            "one synset per line" % (what, path, err.reason, err.start))
    if text.startswith(BOM):
        text = text[1:]
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()            # the newline that ends the last line
    if not lines:
        raise ContractError("%s %s is empty; it needs one synset per line" % (what, path))
    if _looks_like_csv(lines[0]):
        raise ContractError("%s %s line 1 is %r: a CSV (such as Kaggle's "
                            "LOC_val_solution.csv) is not a label file. Give a file "
                            "with one synset per line (for example the shipped "
                            "imagenet_2012_validation_synset_labels.txt, the default)"
                            % (what, path, _show(lines[0])))
    for k, line in enumerate(lines):
        if not is_synset(line):
            problem = "is blank" if not line.strip() else "is %r, not a synset (n + 8 " \
                "digits, nothing else on the line)" % _show(line)
            raise ContractError("%s %s line %d %s. Fix or remove that line."
                                % (what, path, k + 1, problem))
        if known:
            check_known(line, "%s line %d" % (path, k + 1), allow_custom)
    return lines


def _show(text, limit=60):
    return text if len(text) <= limit else text[:limit] + "..."


def check_class_name(name, where):
    """A training class (inner tar or directory) must be named by a synset."""
    if not is_synset(name):
        raise ContractError("%s is not a class: class names are synsets (n + 8 digits), "
                            "and %r is not one. Remove it (it is not part of the "
                            "ILSVRC2012 release), then rerun." % (where, name))


def class_where(listing, group):
    """How a class of a listing is named for messages: the inner tar or directory."""
    if listing.containers and listing.files_flat:
        return "%s: the images labelled %s" % (listing.containers[0], group)
    if listing.containers:
        return "%s: %s%s" % (listing.containers[0], group,
                             ".tar" if listing.inner_tars else "/")
    return "%s/" % "/".join((listing.root or listing.split, group))


def check_classes(listing, allow_custom=False):
    """Every class of a listing: a synset, and one of the 1000 unless allowed."""
    for s in sorted(set(listing.group_names)):
        check_class_name(s, class_where(listing, s))
        check_known(s, "%s (class %s)" % (class_where(listing, s), s), allow_custom)


def check_slim_synsets(synsets, path, allow_custom=False):
    """slim labels are lines of the synsets file: unless custom classes are allowed
    it must be the 1000 ILSVRC2012 synsets in sorted order (line k = label k)."""
    if not allow_custom and tuple(synsets) != official_synsets():
        raise ContractError("%s lists %d synsets, not the 1000 ILSVRC2012 synsets in "
                            "sorted order, so its line numbers are not the ILSVRC2012 "
                            "labels. Use the shipped %s%s."
                            % (path, len(synsets), _shipped_synsets_file(), CUSTOM_HINT))


def listing_where(listing):
    """The file or directory a listing was read from, for messages."""
    if listing.containers:
        return str(listing.containers[0])
    return listing.root or listing.split


def check_numbering(names, where):
    """Validation images are all `ILSVRC2012_val_<8 digits>.JPEG` or none are."""
    numbered = [n for n in names if VAL_NAME.fullmatch(n)]
    if numbered and len(numbered) != len(names):
        odd = next(n for n in names if not VAL_NAME.fullmatch(n))
        raise ContractError("%s: %d validation images are numbered "
                            "(ILSVRC2012_val_<8 digits>.JPEG) but %d are not, e.g. %s; "
                            "labels go by number or by position, never a mix. Rename or "
                            "remove %s." % (where, len(numbered), len(names) - len(numbered),
                                            odd, odd))
    return bool(numbered)


def label_range_note(labels, custom):
    """One line saying which labels a run produces (for custom class sets)."""
    if not custom:
        return None
    return ("custom class set: %d classes, labels %d..%d"
            % (len(labels), min(labels.values()), max(labels.values())))


def check_member_size(size, where):
    if size > MAX_IMAGE_BYTES:
        raise ContractError("%s claims %d bytes; no ILSVRC2012 image is larger than %d "
                            "MiB, so it is refused unread. Get a clean copy of the "
                            "archive." % (where, size, MAX_IMAGE_BYTES >> 20))


def check_label_map(pairs, custom=False, exact=False, where="the shards"):
    """Verify's contract on {synset: set of labels} collected from the records.

    One synset, one label, and one label, one synset.  Unless `custom`: every synset
    is one of the 1000 and the labels keep the synsets' sorted order inside 1..1000;
    when all 1000 synsets are present, or `exact` (slim: labels are lines of the
    1000-synset file), each synset has exactly its standard label.
    Returns a list of problems (strings).
    """
    problems = []
    by_label = {}
    for synset, labels in sorted(pairs.items()):
        if len(labels) > 1:
            problems.append("%s: synset %s has %d different labels (%s); one synset "
                            "must have one label" % (where, synset, len(labels),
                                                     ", ".join(map(str, sorted(labels)))))
        for label in labels:
            by_label.setdefault(label, set()).add(synset)
    for label, synsets in sorted(by_label.items()):
        if len(synsets) > 1:
            problems.append("%s: label %d is given to %d synsets (%s)"
                            % (where, label, len(synsets), ", ".join(sorted(synsets)[:4])))
    if custom or problems:
        return problems
    official = official_labels()
    unknown = sorted(s for s in pairs if s not in official)
    if unknown:
        problems.append("%s: %d synsets are not ILSVRC2012 synsets (%s)"
                        % (where, len(unknown), ", ".join(_show(s, 20) for s in unknown[:3])))
        return problems
    ordered = sorted(pairs)
    labels = [next(iter(pairs[s])) for s in ordered]
    for s, label in zip(ordered, labels):
        if not 1 <= label <= NUM_CLASSES or label > official[s]:
            problems.append("%s: synset %s has label %d; its label can be at most %d "
                            "(its position among the 1000 synsets)"
                            % (where, s, label, official[s]))
            return problems
    for (s1, l1), (s2, l2) in zip(zip(ordered, labels), zip(ordered[1:], labels[1:])):
        if l2 <= l1:
            problems.append("%s: labels do not follow the sorted synsets (%s has %d, %s "
                            "has %d)" % (where, s1, l1, s2, l2))
            return problems
    if exact or len(ordered) == NUM_CLASSES:
        wrong = [s for s, label in zip(ordered, labels) if label != official[s]]
        if wrong:
            problems.append("%s: synset %s has label %d, not its ILSVRC2012 label %d"
                            % (where, wrong[0], next(iter(pairs[wrong[0]])),
                               official[wrong[0]]))
    return problems

