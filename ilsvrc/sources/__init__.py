"""Where each image's bytes are: containers, the readers of every source layout,
discovery, the source index file and the one read-or-walk policy."""
