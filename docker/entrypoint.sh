#!/bin/sh
# Entrypoint of the imagenet-prep image: run the given command (default: bash) as the
# calling user, so that shards and extracted images written into mounted directories
# belong to that user and not to root.
#
#   LOCAL_USER_ID   uid to run as, e.g. `-e LOCAL_USER_ID=$(id -u)`; unset or empty:
#                   the command runs as the container was started
#   LOCAL_GROUP_ID  gid to run as (default: the same number as LOCAL_USER_ID)
#
# `docker run --user UID:GID` works too: the container then starts as that user and
# the command runs unchanged (LOCAL_USER_ID cannot switch away from it).
set -eu

say() { echo "entrypoint: $*" >&2; }
die() { say "$*"; exit 64; }
is_id() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }

[ $# -gt 0 ] || set -- /bin/bash

uid=${LOCAL_USER_ID:-}
gid=${LOCAL_GROUP_ID:-$uid}
if [ -n "$uid" ]; then
  is_id "$uid" || die "LOCAL_USER_ID must be a numeric user id (as from 'id -u'), got '$uid'"
  is_id "$gid" || die "LOCAL_GROUP_ID must be a numeric group id (as from 'id -g'), got '$gid'"
fi

current=$(id -u)
if [ "$current" != 0 ]; then
  # Started with --user: nothing to switch, but give the user a writable HOME.
  if [ -n "$uid" ] && [ "$uid" != "$current" ]; then
    say "running as uid $current (docker run --user); LOCAL_USER_ID=$uid ignored"
  fi
  [ -w "${HOME:-/}" ] || export HOME=/tmp
  exec "$@"
fi
if [ -z "$uid" ] || [ "$uid" = 0 ]; then
  exec "$@"
fi

# Make sure the ids have names: setpriv --init-groups looks the user up.
if ! getent group "$gid" >/dev/null; then
  groupadd --gid "$gid" "imagenet$gid"
fi
name=$(getent passwd "$uid" | cut -d: -f1 || true)
if [ -z "$name" ]; then
  name=imagenet
  if getent passwd "$name" >/dev/null; then name="imagenet$uid"; fi
  useradd --uid "$uid" --gid "$gid" --create-home --shell /bin/bash "$name"
fi
home=$(getent passwd "$uid" | cut -d: -f6 || true)
export HOME="${home:-/tmp}" USER="$name" LOGNAME="$name"

command -v setpriv >/dev/null || die "setpriv (util-linux) is missing from the image"
exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
