#!/usr/bin/env bash
# A container engine for the docker sandbox (and its tests), on a Debian machine with no
# Docker and no image registry: Debian's podman serving the Docker API on a socket of its
# own, and the default sandbox image built offline from the apt mirror. Prints
# DOCKER_HOST=unix://... on stdout (progress on stderr). Needs root.
#
#   bash scripts/start-container-engine.sh         install what is missing (podman, runc,
#                                                  debootstrap), start the service, build
#                                                  and import the image (once)
#   bash scripts/start-container-engine.sh image   only the image, into the engine that
#                                                  DOCKER_HOST names, else the default
#                                                  socket's (Docker or podman)
#   bash scripts/start-container-engine.sh stop    stop the service this script started
#
# Users with a Docker engine need only `image` (or an image of their own). The image is
# `debootstrap --variant=minbase` of this machine's Debian release with python3,
# cached as a tarball in $GOEX_CACHE (default /var/cache/goex) and imported as
# goex-sandbox:bookworm (the release's name).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-start}
run_dir=/run/goex-podman
socket=$run_dir/podman.sock
state=/var/lib/goex-engine  # the service's settings
cache=${GOEX_CACHE:-/var/cache/goex}
. /etc/os-release
release=${VERSION_CODENAME:-bookworm}
image=goex-sandbox:$release
python=.venv/bin/python
[ -x "$python" ] || python=python3

say() { echo "start-container-engine: $*" >&2; }

install_missing() {  # Debian packages named as their commands
  local missing=() name
  for name in "$@"; do
    command -v "$name" >/dev/null || missing+=("$name")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

answers() {  # whether the engine at $1 answers the Docker API
  "$python" - "$1" <<'PY' 2>/dev/null
import sys, docker
docker.DockerClient(base_url=sys.argv[1], timeout=5).ping()
PY
}

write_settings() {
  # nofile at the hard limit, nproc at most 16384: podman's defaults fail here
  # ("setrlimit RLIMIT_NOFILE: Operation not permitted").
  local nofile nproc
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 16384 ]; then nproc=16384; fi
  mkdir -p "$state"
  cat >"$state/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

start_service() {
  mkdir -p "$run_dir"
  if answers "unix://$socket"; then
    return
  fi
  write_settings
  rm -f "$socket"
  say "starting podman's Docker API service on $socket"
  # from $run_dir: conmon leaves files (an `oom` marker) in the service's directory
  (cd "$run_dir" && CONTAINERS_CONF=$state/containers.conf exec setsid podman system service \
    --time=0 "unix://$socket" </dev/null >"$run_dir/service.log" 2>&1 9>&-) &
  echo $! >"$run_dir/service.pid"
  for _ in $(seq 1 100); do
    answers "unix://$socket" && return
    sleep 0.2
  done
  say "the service did not answer; see $run_dir/service.log"
  exit 1
}

build_tarball() {  # the image's root filesystem, built once from the apt mirror
  local tarball=$cache/sandbox-$release.tar
  if [ -s "$tarball" ]; then
    echo "$tarball"
    return
  fi
  local mirror root
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  mkdir -p "$cache"
  root=$(mktemp -d /var/tmp/goex-rootfs.XXXXXX)
  say "building $image with debootstrap from $mirror (once; about 90 s)"
  if ! debootstrap --variant=minbase --include=python3 "$release" "$root" "$mirror" \
    >"$cache/debootstrap.log" 2>&1; then
    say "debootstrap failed; see $cache/debootstrap.log"
    rm -rf "$root"
    exit 1
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar --numeric-owner -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  rm -rf "$root"
  echo "$tarball"
}

import_image() {  # into the engine at $1, unless it has the image
  local host=$1 tarball
  if "$python" - "$host" "$image" <<'PY' 2>/dev/null; then return; fi
import sys, docker
docker.DockerClient(base_url=sys.argv[1], timeout=10).images.get(sys.argv[2])
PY
  tarball=$(build_tarball)
  say "importing $image into the engine at $host"
  "$python" - "$host" "$image" "$tarball" <<'PY'
import json, sys, docker
host, image, tarball = sys.argv[1:]
api = docker.APIClient(base_url=host, timeout=600)
repository, tag = image.rsplit(":", 1)
with open(tarball, "rb") as data:
    out = api.import_image_from_data(data, repository=repository, tag=tag)
found = [json.loads(line) for line in out.splitlines() if line.strip()]
ids = [o.get("id") or o.get("status") for o in found]
ids = [i for i in ids if i and i.startswith("sha256:")]
if not ids:
    sys.exit(f"the engine did not import the image: {out}")
api.tag(ids[-1], repository, tag)  # podman's import names it :latest whatever it is asked
PY
}

if [ "$(id -u)" -ne 0 ]; then
  say "needs root (it installs packages, and the docker backend mounts overlays on the host)"
  exit 1
fi
case "$what" in
  start)
    mkdir -p "$run_dir"
    exec 9>"$run_dir/lock"
    flock 9  # one start at a time (test runs of several people on one machine)
    install_missing podman runc debootstrap  # runc: crun refuses hybrid cgroups (v1 + v2)
    start_service
    import_image "unix://$socket"
    echo "DOCKER_HOST=unix://$socket"
    ;;
  image)
    mkdir -p "$run_dir"
    exec 9>"$run_dir/lock"
    flock 9
    install_missing debootstrap
    host=${DOCKER_HOST:-unix:///var/run/docker.sock}
    import_image "$host"
    echo "DOCKER_HOST=$host"
    ;;
  stop)
    if [ -s "$run_dir/service.pid" ] && kill "$(cat "$run_dir/service.pid")" 2>/dev/null; then
      say "stopped the service (pid $(cat "$run_dir/service.pid"))"
    fi
    rm -f "$run_dir/service.pid" "$socket"
    ;;
  *)
    say "usage: $0 [start|image|stop]"
    exit 2
    ;;
esac
