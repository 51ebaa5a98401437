#!/usr/bin/env bash
# A local base image for the Dockerfiles, for hosts that cannot reach a registry:
# Debian bookworm with Python 3.11 (what python:3.11-slim-bookworm holds), made by
# debootstrap and imported into the container engine. Then build on it:
#   sudo docker/base/make-base.sh
#   podman build --build-arg BASE_IMAGE=localhost/rifebench-base:bookworm -f docker/cpu/Dockerfile -t rifebench:cpu .
# Settings (environment):
#   CONTAINER_ENGINE  docker or podman (default: the first on PATH)
#   DEBIAN_MIRROR     the Debian archive to install from (default: the one this machine's apt uses)
#   BASE_TAG          the image's name (default localhost/rifebench-base:bookworm)
#   BASE_CACHE        folder that keeps the root file system's tarball, so later runs skip
#                     debootstrap (default ~/.cache/rifebench/base)
# Needs root (debootstrap) and debootstrap itself. Prints the image's name last.
# Exit status: 0 done, 1 debootstrap or the import failed, 2 bad settings.
set -euo pipefail

suite=bookworm
include=python3.11,python3.11-venv,python3-pip,ca-certificates
tag="${BASE_TAG:-localhost/rifebench-base:$suite}"
cache="${BASE_CACHE:-$HOME/.cache/rifebench/base}"

die() { echo "make-base.sh: error: $1" >&2; exit "${2:-2}"; }

case "${1:-}" in
  -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (accepted: none, or --help; settings are environment variables)" ;;
esac

engine="${CONTAINER_ENGINE:-}"
if [[ -z "$engine" ]]; then
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null; then engine=$candidate; break; fi
  done
  [[ -n "$engine" ]] || die "neither docker nor podman is on PATH (accepted: install one, or set CONTAINER_ENGINE)"
fi
case "$engine" in
  docker|podman) command -v "$engine" >/dev/null || die "CONTAINER_ENGINE: '$engine' is not on PATH" ;;
  *) die "CONTAINER_ENGINE: '$engine' is not a container engine (accepted: docker, podman)" ;;
esac

if "$engine" image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

# The archive apt uses for this suite: its configured targets name it, whichever
# format (sources.list or deb822) the machine's configuration is written in.
apt_mirror() {
  command -v apt-get >/dev/null || return 0
  # shellcheck disable=SC2016  # $(CODENAME) is apt's own format field, not a shell expansion
  apt-get indextargets --format '$(CODENAME) $(REPO_URI)' 2>/dev/null \
    | awk -v s="$suite" '$1 == s { print $2; exit }'
}
mirror="${DEBIAN_MIRROR:-$(apt_mirror)}"
[[ -n "$mirror" ]] || die "DEBIAN_MIRROR: not set and no apt configuration here names a $suite archive (accepted: the URL of a Debian archive, e.g. your site's mirror)"
[[ "$mirror" =~ ^(https?|file)://[^[:space:]]+$ ]] || die "DEBIAN_MIRROR: '$mirror' is not an archive URL (accepted: http://, https:// or file://)"
mirror="${mirror%/}"
[[ $EUID -eq 0 ]] || die "debootstrap needs root (accepted: run as root, e.g. with sudo)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (accepted: apt-get install debootstrap, or your distribution's package)"

key=$(printf '%s|minbase|%s|%s' "$suite" "$include" "$mirror" | sha256sum | cut -c1-12)
tarball="$cache/$suite-minbase-$key.tar"
mkdir -p "$cache"
if [[ ! -f "$tarball" ]]; then
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  partial="$tarball.partial.$$"
  trap 'rm -rf "$rootfs" "$partial"' EXIT
  echo "make-base.sh: debootstrap $suite from $mirror (about a minute)" >&2
  debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >&2 \
    || die "debootstrap $suite from $mirror failed (see above)" 1
  tar -C "$rootfs" -cf "$partial" .
  mv "$partial" "$tarball"  # complete or absent: a later run never imports half a tarball
fi
"$engine" import - "$tag" <"$tarball" >/dev/null || die "$engine import of $tarball failed" 1
echo "$tag"
