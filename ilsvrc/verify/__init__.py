"""The verify stage: re-reading finished shards and checking them against the format,
the plan and the label contract (reread), and what ./verify.sh checks in an output
directory besides the records (inventory)."""
