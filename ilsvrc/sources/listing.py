"""The `Listing`: the columns (name, group, container, offset, size) every source
gives for the images of one split.

For every image: its name, its group (the synset directory for training images, ''
for the flat validation set) and where its bytes are (a file, an offset, a size).
Nothing here holds image bytes.
"""

import os
from array import array

from ilsvrc.sources import containers

IMAGE_PATTERN = "*.JPEG"


class Listing:
    """Images of one split, in columns: names, groups and locations."""

    def __init__(self, split):
        self.split = split
        self.names = []
        self.group_names = []
        self._group_ids = {}
        self.group = array("I")
        self.container = array("i")   # index into .containers, -1 = own file
        self.offset = array("Q")
        self.size = array("q")        # -1 = whole file
        self.containers = []          # containers.Container of the archives
        self.inner_tars = False       # members sit in '<group>.tar' inside the container
        self.root = None              # tree sources: directory holding the images
        self.files_flat = False       # tree sources: files at root/<name> whatever the group
        self.side_files = None        # a Kaggle zip: {base name: (member, offset, size)}
                                      # of its LOC_* label files, found by the same walk
        self.claims = None            # validation synsets the source names itself (the
                                      # Hugging Face copy), one per image: checked
                                      # against the label file (val_labels.choose)
        self.spool_parts = []         # a spooled copy's parts these images are read
                                      # from (spool.py: removed after a complete run)

    def __len__(self):
        return len(self.names)

    def group_id(self, group):
        gid = self._group_ids.get(group)
        if gid is None:
            gid = self._group_ids[group] = len(self.group_names)
            self.group_names.append(group)
        return gid

    def add(self, name, group, container=-1, offset=0, size=-1):
        self.names.append(name)
        self.group.append(self.group_id(group))
        self.container.append(container)
        self.offset.append(offset)
        self.size.append(size)

    def like(self):
        """An empty listing of the same split that reads from the same places."""
        other = Listing(self.split)
        other.containers, other.root = self.containers, self.root
        other.inner_tars, other.files_flat = self.inner_tars, self.files_flat
        other.spool_parts = self.spool_parts
        return other

    def group_of(self, i):
        return self.group_names[self.group[i]]

    def relpath(self, i):
        g = self.group_of(i)
        return g + "/" + self.names[i] if g else self.names[i]

    def locate(self, i):
        """(container, offset, size, where) for reading image i; `where` names it for
        errors."""
        c = self.container[i]
        if c < 0:
            path = os.path.join(self.root,
                                self.names[i] if self.files_flat else self.relpath(i))
            return containers.File(path), 0, -1, path
        inner = self.group_of(i) + ".tar/" if self.inner_tars else ""
        where = "%s: %s%s" % (self.containers[c], inner, self.names[i])
        return self.containers[c], self.offset[i], self.size[i], where
