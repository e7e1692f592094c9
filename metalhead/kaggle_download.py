#!/usr/bin/env python3
"""Fetch the ImageNet (ILSVRC2012 CLS-LOC) archive from Kaggle with the official client.

    python metalhead/kaggle_download.py DIR

writes DIR/imagenet-object-localization-challenge.zip (about 155 GB). Credentials
come from wherever the official `kaggle` library looks for them (kaggle.json, or
environment variables); they are never taken on the command line and never printed.
Rerunning after an interruption resumes the partial file.

Only the standard library and the `kaggle` package (pinned in requirements.txt next
to this file) are used.
"""
import argparse
import contextlib
import io
import json
import os
import sys

COMPETITION = "imagenet-object-localization-challenge"
RULES_URL = "https://www.kaggle.com/c/%s/rules" % COMPETITION
TOKEN_URL = "https://www.kaggle.com/settings (API -> Create New Token)"
# Test hook, read by this module only: "1" points the client at http://localhost
# (the library's own "--local" switch) so tests can run against a stub server.
LOCAL_ENDPOINT_VAR = "METALHEAD_KAGGLE_LOCALHOST"

PROG = "download"


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ilsvrc.errors import UserError as Failure, report  # noqa: E402  (one line, exit 1)


def config_dir():
    """The folder the kaggle library reads kaggle.json from (same rules it uses)."""
    explicit = os.environ.get("KAGGLE_CONFIG_DIR")
    if explicit:
        return explicit
    home_dir = os.path.join(os.path.expanduser("~"), ".kaggle")
    if sys.platform.startswith("linux") and not os.path.exists(home_dir):
        xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        return os.path.join(xdg, "kaggle")
    return home_dir


def _nonempty_file(path):
    try:
        with open(path) as f:
            return bool(f.read().strip())
    except OSError:
        return False


def credentials_source():
    """Say where usable credentials are, or raise Failure. Never returns their values."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "environment variable KAGGLE_API_TOKEN"
    json_path = os.path.join(config_dir(), "kaggle.json")
    found = {}
    if os.path.exists(json_path):
        try:
            with open(json_path) as f:
                found = json.load(f)
        except (OSError, ValueError):
            found = None
        if not isinstance(found, dict):
            raise Failure("%s is not a JSON object with \"username\" and \"key\": download a new "
                          "token from %s and save it there." % (json_path, TOKEN_URL))
    has_user = bool(found.get("username") or os.environ.get("KAGGLE_USERNAME"))
    has_key = bool(found.get("key") or os.environ.get("KAGGLE_KEY"))
    if has_user and has_key:
        if found:
            _warn_if_readable(json_path)
            return json_path
        return "environment variables KAGGLE_USERNAME / KAGGLE_KEY"
    home_kaggle = os.path.join(os.path.expanduser("~"), ".kaggle")
    for name in ("access_token", "access_token.txt"):
        if _nonempty_file(os.path.join(home_kaggle, name)):
            return os.path.join(home_kaggle, name)
    oauth = os.path.join(home_kaggle, "credentials.json")
    if os.path.exists(oauth):
        return oauth + " (kaggle auth login)"
    if found:
        raise Failure("%s lacks \"%s\": download a new token from %s and save it there."
                      % (json_path, "key" if has_user else "username", TOKEN_URL))
    raise Failure("no Kaggle API credentials found: save the kaggle.json token from %s as %s "
                  "(chmod 600), or export KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), "
                  "then rerun." % (TOKEN_URL, json_path))


def _warn_if_readable(path):
    if os.name != "nt" and os.stat(path).st_mode & 0o044:
        print("%s: warning: %s is readable by other users; run: chmod 600 %s" % (PROG, path, path),
              file=sys.stderr)


def load_api():
    """Import the official client quietly and make an unauthenticated KaggleApi."""
    noise = io.StringIO()  # the library prints auth help at import time; we say it ourselves
    try:
        with contextlib.redirect_stdout(noise):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as e:
        raise Failure("the kaggle package is not importable (%s): run "
                      "'python -m pip install -r metalhead/requirements.txt' in the project "
                      "virtualenv, then rerun." % e)
    api = KaggleApi()
    if os.environ.get(LOCAL_ENDPOINT_VAR) == "1":
        api.args = list(api.args) + ["--local"]
    return api


def authenticate(api):
    """Let the library pick up the credentials (an access token is checked online)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            api.authenticate()
    except SystemExit:
        raise Failure("the kaggle library found no usable credentials: save the kaggle.json "
                      "token from %s as %s, then rerun."
                      % (TOKEN_URL, os.path.join(config_dir(), "kaggle.json")))


def explain_http_error(err, target):
    """One line for an HTTP error from the Kaggle API."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    said = str(err).strip().splitlines()[0] if str(err).strip() else "no details"
    if status == 403:
        return ("Kaggle answered 403 Forbidden (%s). Sign in as the account of your API token, "
                "accept the competition rules at %s, then rerun." % (said, RULES_URL))
    if status == 401:
        return ("Kaggle rejected the API credentials (401): create a new token at %s, "
                "replace the old one, then rerun." % TOKEN_URL)
    if status == 404:
        return ("Kaggle found no data for '%s' (404: %s): check that %s still exists, "
                "then rerun." % (COMPETITION, said, RULES_URL.rsplit("/", 1)[0]))
    if status == 429:
        return "Kaggle is rate limiting this account (429): wait a while, then rerun to resume."
    if status is not None and status >= 500:
        return "Kaggle had a server error (%s): rerun later; %s resumes where it stopped." % (
            status, target)
    return "download failed (HTTP %s: %s): rerun to resume %s." % (status, said, target)


def download(dest):
    os.makedirs(dest, exist_ok=True)
    target = os.path.join(dest, COMPETITION + ".zip")
    source = credentials_source()
    print("%s: using Kaggle credentials from %s" % (PROG, source), file=sys.stderr)
    api = load_api()
    import requests  # a dependency of kaggle; only its exception types are used

    try:
        authenticate(api)
        api.competition_download_files(COMPETITION, path=dest, quiet=False)
    except requests.exceptions.HTTPError as e:
        raise Failure(explain_http_error(e, target))
    except requests.exceptions.RequestException as e:
        raise Failure("network error (%s): check the connection and rerun; %s resumes "
                      "where it stopped." % (type(e).__name__, target))
    except ValueError as e:  # the library's size check after the last retry
        raise Failure("%s: %s; rerun to resume." % (target, e))
    except OSError as e:
        raise Failure("cannot write %s (%s): free disk space (about 160 GB is needed) or "
                      "choose another DIR, then rerun." % (target, e.strerror or e))
    if os.path.exists(target + ".kaggle-partial") or not os.path.isfile(target):
        raise Failure("%s is incomplete: rerun to resume." % target)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="download.sh",
        description="Download %s.zip from Kaggle into DIR with the official kaggle client "
                    "(credentials: kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY; "
                    "rerun to resume)." % COMPETITION)
    parser.add_argument("dir", metavar="DIR", help="folder that receives the archive")
    args = parser.parse_args(argv)
    try:
        target = download(args.dir)
    except Failure as e:
        return report(e, PROG)
    except KeyboardInterrupt:
        print("\n%s: interrupted; the partial file stays in %s, rerun the same command to resume."
              % (PROG, args.dir), file=sys.stderr)
        return 130
    except Exception as e:  # anything else: still one line, never a traceback
        print("%s: error: unexpected %s: %s; rerun, and report it if it repeats."
              % (PROG, type(e).__name__, e), file=sys.stderr)
        return 1
    print("%s: done: %s (%d bytes). Next: python3 metalhead/prepare.py %s --out OUT"
          % (PROG, target, os.path.getsize(target), target), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
