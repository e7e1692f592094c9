"""Which file labels the validation images: an explicit label file, the source's own
LOC_val_solution.csv (checked against its LOC_synset_mapping.txt) when the source is
the Kaggle copy, else the shipped 50,000-line file.

`choose(source, explicit, local_name, ...)` returns a label source with `.path`
(what the log line names) and `.lines_for(sorted_names)`, the label lines in the form
`plan.validation_synsets` takes (line k for image number k, or one line per image in
sorted name order).
"""

import csv
import io
import os
import re

from ilsvrc import contract, shipped, storage
from ilsvrc.sources import containers, kagglezip
from ilsvrc.errors import UserError
from ilsvrc.storage import cache

SOLUTION, MAPPING = kagglezip.SOLUTION, kagglezip.MAPPING
LOCAL_NAME = "synset_labels.txt"   # the source directory's own label file, if any
HEADER = ["ImageId", "PredictionString"]
VAL_ID = re.compile(r"ILSVRC2012_val_(\d{8})")
VAL_IMAGES = 50000     # ILSVRC2012_val_00000001 .. ILSVRC2012_val_00050000


def check_synset(synset, where):
    """Raise UserError unless `synset` is written like an ILSVRC synset (n + 8 digits)."""
    if not contract.is_synset(synset):
        raise UserError("%s: %r is not a synset (expected n followed by 8 digits). "
                        "Use the file from the Kaggle archive." % (where, synset))


class FileLabels:
    """A label file with one synset per line (synset_labels.txt, the shipped file)."""

    def __init__(self, path, allow_custom=False):
        self.path = path
        self.lines = contract.read_synset_file(path, "validation label file",
                                               allow_custom=allow_custom)

    def lines_for(self, names):
        return self.lines


def _bucket_labels(path, cache_dir, allow_custom):
    """FileLabels of the label file `path` in a bucket (None: no such object), read
    from the local copy storage.cache makes of it but named by its object, in the
    log and in every error: that copy is made again from the object on every run,
    so the object is what to fix."""
    local = cache.fetch_small(path, cache_dir)
    if local is None:
        return None
    try:
        labels = FileLabels(local, allow_custom)
    except UserError as err:
        err.args = (str(err).replace(local, path),)
        raise
    labels.path = path
    return labels


def parse_mapping(text, where):
    """Synsets of LOC_synset_mapping.txt text ('nXXXXXXXX words' per line), in order;
    a byte order mark is stripped, as from label files."""
    synsets, seen = [], {}
    text = text[1:] if text.startswith(contract.BOM) else text
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        synset = line.split()[0]
        check_synset(synset, "%s line %d" % (where, k))
        if synset in seen:
            raise UserError("%s line %d repeats %s (first on line %d). Use the file from "
                            "the Kaggle archive." % (where, k, synset, seen[synset]))
        seen[synset] = k
        synsets.append(synset)
    if not synsets:
        raise UserError("%s lists no synsets. Use the file from the Kaggle archive." % where)
    return synsets


def parse_solution(text, where, known):
    """{ImageId: synset} of LOC_val_solution.csv text: the synset is the first token of
    PredictionString; rows may come in any order, each ImageId an image number of
    the validation set (ILSVRC2012_val_NNNNNNNN, 1..50,000) once; a malformed row
    stops the run.  A byte order mark is stripped, as from label files.  `known`:
    the synsets of LOC_synset_mapping.txt (`known.where` names it in errors)."""
    rows, first = {}, {}
    text = text[1:] if text.startswith(contract.BOM) else text
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != HEADER:
        raise UserError("%s: the first line should be 'ImageId,PredictionString', not %r. "
                        "Use the file from the Kaggle archive."
                        % (where, ",".join(header or [])))
    for row in reader:
        k = reader.line_num
        if not row:
            continue
        tokens = row[1].split() if len(row) == 2 else []
        if not tokens or not row[0]:
            raise UserError("%s line %d: expected 'ImageId,<synset> <box> ...', got %r. "
                            "Use the file from the Kaggle archive." % (where, k, ",".join(row)))
        image, synset = row[0], tokens[0]
        number = VAL_ID.fullmatch(image)
        if not number or not 1 <= int(number.group(1)) <= VAL_IMAGES:
            raise UserError("%s line %d: %r is not an ImageId of the validation set "
                            "(ILSVRC2012_val_00000001 .. ILSVRC2012_val_%08d, no suffix). "
                            "Use the file from the Kaggle archive."
                            % (where, k, image, VAL_IMAGES))
        if image in rows:
            raise UserError("%s line %d names %s again (first on line %d); each image "
                            "needs exactly one row. Use the file from the Kaggle archive."
                            % (where, k, image, first[image]))
        check_synset(synset, "%s line %d" % (where, k))
        if synset not in known.synsets:
            raise UserError("%s line %d labels %s as %s, which %s does not list. Use the "
                            "files from one Kaggle archive." % (where, k, image, synset,
                                                                known.where))
        rows[image], first[image] = synset, k
    return rows


class Known:
    def __init__(self, synsets, where):
        self.synsets, self.where = set(synsets), where


class SolutionLabels:
    """The Kaggle copy's LOC_val_solution.csv, checked against LOC_synset_mapping.txt."""

    def __init__(self, solution_text, solution_where, mapping_text, mapping_where):
        self.path = solution_where
        known = Known(parse_mapping(mapping_text, mapping_where), mapping_where)
        self.rows = parse_solution(solution_text, solution_where, known)

    def lines_for(self, names):
        """Label lines for the validation images `names` (sorted), each of which must
        have a row."""
        ids = [n[:-len(".JPEG")] if n.endswith(".JPEG") else n for n in names]
        for name, image in zip(names, ids):
            if image not in self.rows:
                raise UserError("%s has no row for the validation image %s. Use the "
                                "complete file from the Kaggle archive, or give a label "
                                "file explicitly." % (self.path, name))
        numbers = [VAL_ID.fullmatch(i) for i in self.rows]
        if all(numbers) and all(VAL_ID.fullmatch(i) for i in ids):
            lines = [""] * max(int(m.group(1)) for m in numbers)
            for m, synset in zip(numbers, self.rows.values()):
                lines[int(m.group(1)) - 1] = synset
            return lines      # "" where a number has no row; no present image has one
        return [self.rows[i] for i in ids]


def _read_text(path, what):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except OSError as err:
        raise UserError("cannot read %s %s: %s" % (what, path, err.strerror or err))
    except UnicodeDecodeError as err:
        raise UserError("%s %s is not UTF-8 text (%s)" % (what, path, err.reason))


def _tree_tops(raw_dir, train_dir):
    """Folders that may hold the LOC_* files of a Kaggle tree: raw_dir and the folder
    holding ILSVRC/ (train_dir is <top>/ILSVRC/Data/CLS-LOC/train)."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(train_dir)))))
    return [raw_dir] + ([top] if os.path.abspath(top) != os.path.abspath(raw_dir) else [])


def _from_tree(raw_dir, train_dir):
    for top in _tree_tops(raw_dir, train_dir):
        solution = os.path.join(top, SOLUTION)
        if os.path.isfile(solution):
            mapping = os.path.join(top, MAPPING)
            if not os.path.isfile(mapping):
                raise UserError("missing %s next to %s: it comes with the Kaggle archive "
                                "(metalhead/prepare.py puts both there)." % (mapping, solution))
            return SolutionLabels(_read_text(solution, "label file"), solution,
                                  _read_text(mapping, "synset mapping"), mapping)
    raise UserError("no %s in %s: the Kaggle copy's validation labels are in that file "
                    "(metalhead/prepare.py puts it there); copy it from the Kaggle archive, "
                    "or give a label file explicitly."
                    % (SOLUTION, " or ".join(_tree_tops(raw_dir, train_dir))))


def _zip_member(archive, offset, csize):
    """Bytes of one member of the zip (inflated, CRC-checked)."""
    members = containers.ZipMembers(archive)
    try:
        handle = members.open()
    except OSError as err:
        raise UserError("cannot open %s: %s" % (archive, err.strerror or err))
    try:
        return members.read(handle, offset, csize)
    finally:
        members.close(handle)


def _zip_side_files(archive):
    """{base name: (member, offset, size)} of the zip's LOC_* files, walking its
    central directory (only when the listings did not record them: an index file
    written before they were)."""
    found = {}
    for name, offset, csize in kagglezip.zip_members(archive):
        kagglezip.side_file(found, name, offset, csize)
    return found


def _from_zip(archive, side_files=None):
    found = _zip_side_files(archive) if side_files is None else side_files
    texts = {}
    for base in (SOLUTION, MAPPING):
        if base not in found:
            raise UserError("%s holds no %s: it is not the complete Kaggle archive; "
                            "download it again, or give a label file explicitly."
                            % (archive, base))
        name, offset, csize = found[base]
        where = "%s:%s" % (archive, name)
        try:
            texts[base] = (_zip_member(archive, offset, csize).decode("utf-8"), where)
        except UnicodeDecodeError as err:
            raise UserError("%s is not UTF-8 text (%s)" % (where, err.reason))
    return SolutionLabels(texts[SOLUTION][0], texts[SOLUTION][1],
                          texts[MAPPING][0], texts[MAPPING][1])


def choose(source, explicit=None, local_name=None, allow_custom=False, side_files=None,
           cache_dir=None):
    """The validation label source for `source` (a discover.Source): `explicit` when
    given (a local file or a gs:// object), else source.root/`local_name` when it
    exists (an object is copied into index_dir(cache_dir) and named as itself), else the Kaggle copy's LOC_val_solution.csv for a Kaggle
    tree or zip (a zip's LOC_* members where the walk or the index recorded them:
    `side_files`, the validation listing's), else the shipped file."""
    raw_dir = source.root
    if explicit and storage.is_remote(explicit):
        labels = _bucket_labels(explicit, cache_dir, allow_custom)
        if labels is None:
            raise UserError("validation label file %s: no such object. Check the path "
                            "(gcloud storage ls %s)." % (explicit, explicit))
        return labels
    if explicit:
        return FileLabels(explicit, allow_custom)
    if local_name and storage.is_remote(raw_dir):   # read from the bucket when there
        labels = _bucket_labels(storage.join(raw_dir, local_name), cache_dir,
                                allow_custom)
        if labels is not None:
            return labels
    elif local_name and os.path.isfile(os.path.join(raw_dir, local_name)):
        return FileLabels(os.path.join(raw_dir, local_name), allow_custom)
    if source.kind == "kaggle":
        labels = _from_tree(raw_dir, source.train)
    elif source.kind == "zip":
        labels = _from_zip(source.train, side_files)
    else:
        return FileLabels(shipped.VAL_LABELS_FILE, allow_custom)
    for image, synset in labels.rows.items():
        contract.check_known(synset, "%s (row of %s)" % (labels.path, image), allow_custom)
    return labels


def check_claims(val, labels):
    """The third check of a source that names each validation image's synset itself
    (the Hugging Face copy: val.claims): the label file must give the same synset."""
    if val.claims is None:
        return
    names = sorted(val.names)
    lines = labels.lines_for(names)
    by_number = all(VAL_ID.match(n) for n in names)
    position = {n: k for k, n in enumerate(names)}
    for i, (name, claim) in enumerate(zip(val.names, val.claims)):
        k = int(name[15:23]) - 1 if by_number else position[name]
        said = lines[k] if 0 <= k < len(lines) else None
        if said != claim:
            where = "%s: %s" % (val.containers[val.container[i]], name)
            raise UserError("%s is %s in the copy (its name and label) but %s in %s: the "
                            "copy and the label file disagree. Give the label file that "
                            "belongs to this copy (--labels), or get a clean copy."
                            % (where, claim, said or "has no line", labels.path))
