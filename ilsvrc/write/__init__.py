"""The write stage: the driver, the workers that own whole shards, the finisher, the
destinations (a local directory or a gs:// prefix), the run lock, resume and the
in-worker check."""
