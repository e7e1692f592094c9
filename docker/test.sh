#!/usr/bin/env bash
# docker/test.sh [--keep] : build docker/Dockerfile and run both conversions in it.
#
# Run by hand (as root, or as a user who may talk to the docker daemon), not by CI:
# it needs a docker engine, ~5 GB of disk with the vfs storage driver, and minutes.
#   1. starts a daemon when none answers (Debian's docker.io, `dockerd --storage-driver=vfs`)
#   2. builds the image; when the Dockerfile's FROM tag cannot be pulled and
#      STANDIN_TF_BASE names a script (called as SCRIPT TAG VERSION) that builds a
#      stand-in image under that tag, it runs it and says so; else it stops
#   3. writes a generated sample release, and runs in the image, as LOCAL_USER_ID=1000
#      with --network none:  ./build.sh /imagenet  and
#      slim/download_and_convert_imagenet.sh /imagenet
#   4. checks 1024 + 128 official and 1024 + 128 slim shards, that every file the
#      container wrote belongs to uid 1000, and that every shard is byte for byte the
#      one the same commands write outside the container (with this checkout's .venv)
# Prints "docker/test.sh: PASS ..." and exits 0, or names the failed check and exits 1.
# The test image is removed at the end unless --keep is given; the base image is kept.
set -euo pipefail
top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$top"
IMAGE=imagenet-prep:test
USER_ID=1000
keep=0
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "docker/test.sh: unknown option '$a' (try --help)" >&2; exit 2 ;;
  esac
done
say() { echo "docker/test.sh: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/imagenet-prep-docker.XXXXXX")
daemon_pid=
cleanup() {
  rm -rf "$work"
  if [ $keep = 0 ]; then docker image rm -f "$IMAGE" >/dev/null 2>&1 || true; fi
  if [ -n "$daemon_pid" ]; then
    say "stopping the docker daemon this script started (pid $daemon_pid)"
    kill "$daemon_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# 1. a daemon
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    say "no docker engine: installing Debian's docker.io"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  log=${TMPDIR:-/tmp}/imagenet-prep-dockerd.log
  say "no docker daemon answers: starting dockerd --storage-driver=vfs (log: $log)"
  dockerd --storage-driver=vfs >"$log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || fail "dockerd did not start (see $log)"
fi

# 2. the image
base=$(sed -n 's/^FROM[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' docker/Dockerfile | head -1)
version=${base##*:}
if docker image inspect "$base" >/dev/null 2>&1; then
  if [ -z "$(docker image inspect --format '{{.RepoDigests}}' "$base" | tr -d '[]')" ]; then
    say "base $base is present locally and has no registry digest: probably the stand-in"
  else
    say "base $base is present locally (pulled)"
  fi
elif timeout 120 docker pull -q "$base" >/dev/null 2>&1; then
  say "pulled $base"
else
  stand_in=${STANDIN_TF_BASE:-}
  [ -n "$stand_in" ] && [ -x "$stand_in" ] || fail "cannot pull $base: docker pull or" \
    "docker load it first, or set STANDIN_TF_BASE to a script that builds an image" \
    "under that tag (called as SCRIPT TAG VERSION)"
  say "cannot pull $base: building the LOCAL STAND-IN under that tag (Debian bookworm +" \
      "tensorflow-cpu==$version, not the official image)"
  "$stand_in" "$base" "$version" >&2
fi
say "building $IMAGE ..."
docker build -q -f docker/Dockerfile -t "$IMAGE" . >/dev/null || fail "docker build failed"
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
base_size=$(docker image inspect --format '{{.Size}}' "$base")
say "image $IMAGE: $((size / 1000000)) MB ($(( (size - base_size) / 1000 )) kB on top of $base)"

# 3. a sample, converted inside and outside the container
py="$top/.venv/bin/python"
[ -x "$py" ] || fail "no $py: run ./setup.sh first (the outside run needs it)"
sample_module=ilsvrc.sample
[ -f ilsvrc/testing/sample.py ] && sample_module=ilsvrc.testing.sample
PYTHONPATH="$top" "$py" -m "$sample_module" --bbox "$work/inside" 2>/dev/null \
  || fail "could not write the sample release"
cp -a "$work/inside" "$work/outside"
chown -R "$USER_ID:$USER_ID" "$work/inside"   # the user's own directory
chmod 0755 "$work"
run_in() {
  docker run --rm --network none -e LOCAL_USER_ID=$USER_ID -v "$work/inside:/imagenet" \
    "$IMAGE" "$@" >"$work/container.log" 2>&1 \
    || { tail -20 "$work/container.log" >&2; fail "in the container: $* failed"; }
}
say "in the container (uid $USER_ID, --network none): ./build.sh /imagenet"
run_in ./build.sh /imagenet -j 2
say "in the container (uid $USER_ID, --network none): slim/download_and_convert_imagenet.sh /imagenet"
run_in slim/download_and_convert_imagenet.sh /imagenet -j 2
say "outside the container: the same two commands"
./build.sh "$work/outside" -j 2 >"$work/outside.log" 2>&1 || fail "./build.sh outside failed"
slim/download_and_convert_imagenet.sh "$work/outside" -j 2 >>"$work/outside.log" 2>&1 \
  || fail "slim driver outside failed"

# 4. checks
count() { find "$1" -maxdepth 1 -type f -name "$2" | wc -l; }
in=$work/inside
o_train=$(count "$in/tf_records/train" 'train-*-of-01024')
o_val=$(count "$in/tf_records/validation" 'validation-*-of-00128')
s_train=$(count "$in" 'train-*-of-01024')
s_val=$(count "$in" 'validation-*-of-00128')
[ "$o_train" = 1024 ] && [ "$o_val" = 128 ] \
  || fail "official: $o_train train + $o_val validation shards, expected 1024 + 128"
[ "$s_train" = 1024 ] && [ "$s_val" = 128 ] \
  || fail "slim: $s_train train + $s_val validation shards, expected 1024 + 128"
say "shards: official $o_train + $o_val, slim $s_train + $s_val"
written=$( { find "$in/tf_records" "$in/raw-data" -mindepth 1; \
             find "$in" -maxdepth 1 -name '*-of-*'; } )
not_user=$(printf '%s\n' "$written" | xargs -d '\n' stat -c '%u %n' | awk -v u=$USER_ID '$1 != u' | head -5)
[ -z "$not_user" ] || fail "files not owned by uid $USER_ID: $not_user"
say "ownership: all $(printf '%s\n' "$written" | wc -l) written files and directories belong to uid $USER_ID"
shards() { (cd "$1" && find tf_records -type f -name '*-of-*' ! -name '.*'; find . -maxdepth 1 -type f -name '*-of-*' ! -name '.*') | sort; }
[ "$(shards "$in")" = "$(shards "$work/outside")" ] || fail "inside and outside wrote different shard names"
n=0
while read -r rel; do
  cmp -s "$in/$rel" "$work/outside/$rel" || fail "$rel differs between the container and the outside run"
  n=$((n + 1))
done < <(shards "$in")
records=$(PYTHONPATH="$top" "$py" -c '
import sys
from ilsvrc.records import tfrecord
print(sum(sum(1 for _ in tfrecord.read_records(p, check_crc=False)) for p in sys.argv[1:]))
' $(shards "$in" | sed "s|^|$in/|"))
say "PASS: $n shards ($records records) written in the container as uid $USER_ID are" \
    "byte-identical to the outside run; image $((size / 1000000)) MB"
