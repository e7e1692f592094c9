#!/usr/bin/env bash
# Install what the tests need into .venv (see setup.sh), then run the whole suite.
# Extra arguments go to pytest.  Exits non-zero when any test fails or none ran.
#
# The suite runs in parallel (pytest-xdist, --dist loadfile: each test module stays
# in one worker process, so module fixtures are built once and the one module that
# binds 127.0.0.1:80 never meets itself).  Workers: one per CPU, at least 2 (most
# tests wait on a single-threaded command) and at most 8; ILSVRC_TEST_WORKERS=N
# overrides it, 0 runs everything in this process.  The 15 slowest tests are listed.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
"$top/setup.sh" --test
cd "$top"
workers=${ILSVRC_TEST_WORKERS:-$(nproc 2>/dev/null || echo 2)}
if [ -z "${ILSVRC_TEST_WORKERS:-}" ]; then
  [ "$workers" -lt 2 ] && workers=2
  [ "$workers" -gt 8 ] && workers=8
fi
exec "$top/.venv/bin/python" -m pytest -q -n "$workers" --dist loadfile --durations=15 \
  tests "$@"
