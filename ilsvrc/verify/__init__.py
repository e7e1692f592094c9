"""The verify stage: re-reading finished shards and checking them against the format,
the plan and the label contract."""
