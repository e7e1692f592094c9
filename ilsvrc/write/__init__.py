"""The write stage: workers that own whole shards, the finisher, the run lock, resume and
the in-worker check."""
