#!/usr/bin/env bash
# Prints the base image that integration_tests/test_image.py builds the connector image on with buildah; prints
# nothing where a Docker engine answers (docker pulls the Dockerfile's own base image) or where buildah cannot run.
#
# Without a Docker engine (CI here has none) the image is built by Debian's buildah, which needs no daemon, on a
# stand-in for Airbyte's base image, which cannot be pulled here: Debian bookworm's Python 3.11 (the base's version)
# plus what the base adds and the image relies on: a `python` command, pip allowed to install into the system Python,
# a user `airbyte` (uid 1000) owning /airbyte, UTC as local time. It is made once per machine (debootstrap, about a
# minute) and kept in buildah's storage (/var/lib/containers), outside the clone, under a name that changes with
# this script, so an edited recipe makes a new one.
#
# Installs buildah and debootstrap when missing, as root. Not root and no buildah: says why on stderr and prints
# nothing; the image tests then skip, or fail when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDAH=(buildah --storage-driver vfs)
NAME=localhost/source-northpass-lms-base-standin
STANDIN="$NAME:bookworm-py311-$(sha1sum scripts/image-base.sh | cut -c1-12)"
LOG_DIR=/var/cache/source-northpass-lms

if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "image-base: no Docker engine answers, and making buildah's stand-in base image needs root; image tests skip." >&2
  exit 0
fi
if ! command -v buildah >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  echo "image-base: installing buildah and debootstrap (apt-get)..." >&2
  mkdir -p "$LOG_DIR"
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y buildah debootstrap; } >"$LOG_DIR/apt.log" 2>&1; then
    tail -n 20 "$LOG_DIR/apt.log" >&2
    echo "image-base: installing buildah and debootstrap failed; apt's output is in $LOG_DIR/apt.log" >&2
    exit 1
  fi
fi

mkdir -p "$LOG_DIR"
# Several clones on one machine share the stand-in: one makes it, the others wait for it.
exec 9>"$LOG_DIR/standin.lock"
flock 9
if ! "${BUILDAH[@]}" inspect --type image "$STANDIN" >/dev/null 2>&1; then
  echo "image-base: making the stand-in base image $STANDIN (first time on this machine, about two minutes)..." >&2
  container="$("${BUILDAH[@]}" from --quiet scratch)"
  trap '"${BUILDAH[@]}" rm "$container" >/dev/null 2>&1 || true' EXIT
  rootfs="$("${BUILDAH[@]}" mount "$container")"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" >"$LOG_DIR/debootstrap.log" 2>&1; then
    tail -n 20 "$LOG_DIR/debootstrap.log" >&2
    echo "image-base: debootstrap failed; its output is in $LOG_DIR/debootstrap.log" >&2
    exit 1
  fi
  # What Airbyte's base image has that Debian's Python lacks; apt's downloads and lists only make the image bigger.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -s /usr/bin/python3 "$rootfs/usr/local/bin/python"
  chroot "$rootfs" useradd --system --uid 1000 --user-group --no-create-home airbyte 2>>"$LOG_DIR/debootstrap.log"
  mkdir -m 755 "$rootfs/airbyte"
  chroot "$rootfs" chown airbyte:airbyte /airbyte
  ln -snf /usr/share/zoneinfo/Etc/UTC "$rootfs/etc/localtime"
  "${BUILDAH[@]}" umount "$container" >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd python3 "$container"
  "${BUILDAH[@]}" commit --quiet --rm "$container" "$STANDIN" >/dev/null
  trap - EXIT
  # Stand-ins of earlier recipes are no longer used.
  "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep -F "$NAME:" | grep -vxF "$STANDIN" |
    xargs -r "${BUILDAH[@]}" rmi >/dev/null 2>&1 || true
fi
echo "$STANDIN"
