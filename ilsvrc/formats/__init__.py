"""The two output formats (official, slim), their inputs (boxes, extraction) and the one
conversion driver."""
