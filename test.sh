#!/usr/bin/env bash
# Install what the tests need into .venv (see setup.sh), then run the whole suite.
# Extra arguments go to pytest.  Exits non-zero when any test fails or none ran.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
"$top/setup.sh" --test
cd "$top"
exec "$top/.venv/bin/python" -m pytest -q tests "$@"
