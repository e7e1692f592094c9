"""Files other readers need beside the shards: DALI index files and TFDS metadata."""
