"""The output formats by name, for the commands that read shards back (`verify`).

Each format (conversion.Format, defined in its own module) gives its record schema
({feature key: kind}), its
shard layout -- (subdirectory of the output directory, file-name prefix, number of
shards) per split -- and its planner.
"""

from ilsvrc.formats import official, slim

FORMATS = {fmt.name: fmt for fmt in (official.FORMAT, slim.FORMAT)}

# Split sizes of the complete ILSVRC2012 release.
FULL_COUNTS = {"train": 1281167, "validation": 50000}
