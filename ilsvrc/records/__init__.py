"""What a record is: the Example codec, JPEG checks, TFRecord framing and the record rules
both the write and the verify stage apply.  Knows no storage and no source."""
