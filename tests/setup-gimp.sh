#!/bin/sh
# Prepare a real GIMP 3 for tests/test_gimp_plugin.py and tests/test_gimp_dialog.py on a Debian 12 machine
# (idempotent; as root).
#
# GIMP 3 is packaged from Debian 13 on, so this builds a Debian 13 root folder with ../shared/tools/gimp3-root.sh
# (once: about 1.7 GB, 1-5 minutes depending on the mirror) and makes this machine's hostplug visible inside it:
# the Python prefix hostplug is installed in, and this repository (an editable install points into it), are
# bind-mounted into the root at the same paths, and so is /tmp, so a file under /tmp has one path for pytest
# (outside) and for GIMP and hostplug (inside). The GIMP plug-in then runs the very `hostplug` the tests use.
#
# Each bind made now is printed as "bound DIR" (the tests take down those they made). The bind mounts stay up for
# later runs; `--unmount` takes them down (not the root's /proc and /dev, which
# other tests may use). Unmount before deleting the root folder: the mounts make this repository, the Python
# prefix and /tmp part of it.
#
# Usage: tests/setup-gimp.sh [--unmount]
# Environment: HOSTPLUG_GIMP_ROOT (default /var/tmp/trixie-root), PYTHON (default python3: the interpreter
# hostplug is installed in), HOSTPLUG_SHARED (default ../shared beside the repository).
set -eu
ROOT=${HOSTPLUG_GIMP_ROOT:-/var/tmp/trixie-root}
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${HOSTPLUG_SHARED:-$REPO/../shared}
PYTHON=${PYTHON:-python3}

[ "$(id -u)" = 0 ] || { echo "setup-gimp.sh: run as root (debootstrap, chroot and mount need it)" >&2; exit 2; }

# The folders to bind: Python prefixes (a venv and the interpreter it is based on), this repository and the
# one hostplug is imported from (the same for an editable install of this checkout), /tmp. Imported as the
# plug-in imports it, without PYTHONPATH (which a test run may point at another checkout).
PREFIXES=$("$PYTHON" -c 'import sys; print(sys.prefix); print(sys.base_prefix)' | sort -u)
IMPORTED=$(cd /tmp && env -u PYTHONPATH "$PYTHON" -c 'import pathlib, hostplug; print(pathlib.Path(hostplug.__file__).resolve().parents[1])' 2>/dev/null || true)
BINDS=$(printf '%s\n%s\n%s\n/tmp\n' "$PREFIXES" "$REPO" "$IMPORTED" | grep -v '^$' | sort -u)

if [ "${1:-}" = "--unmount" ]; then
  # Every one is tried (deepest first), then a failure is reported: stopping at the first busy one would leave
  # the others mounted. A busy one is held by a process running in the root (a render service not yet exited).
  # Recursively: a run killed part-way leaves its checkout (/tmp/CLONE) bound inside the root's /tmp.
  FAILED=
  while read -r dir; do
    if mountpoint -q "$ROOT$dir" && ! umount -R "$ROOT$dir"; then FAILED="$FAILED $ROOT$dir"; fi
  done <<EOF
$(echo "$BINDS" | sort -r)
EOF
  if [ -n "$FAILED" ]; then
    echo "setup-gimp.sh: could not unmount:$FAILED (busy? 'fuser -vm PATH' shows who holds it)" >&2
    exit 1
  fi
  echo "unmounted hostplug's bind mounts under $ROOT"
  exit 0
fi

if [ ! -x "$ROOT/usr/bin/gimp-console-3.0" ]; then
  [ -f "$SHARED/tools/gimp3-root.sh" ] || { echo "setup-gimp.sh: $SHARED/tools/gimp3-root.sh is missing" >&2; exit 2; }
  sh "$SHARED/tools/gimp3-root.sh" "$ROOT"
fi

if mountpoint -q "$ROOT/proc"; then :; else mount -t proc proc "$ROOT/proc"; fi
if mountpoint -q "$ROOT/dev"; then :; else mount --bind /dev "$ROOT/dev"; fi
if mountpoint -q "$ROOT/dev/pts"; then :; else mount --bind /dev/pts "$ROOT/dev/pts"; fi

# What tests/test_gimp_dialog.py drives GIMP's interface with: a virtual X server, synthetic key presses,
# screenshots (ImageMagick's import). Installed into the root once, from Debian 13's mirror.
if ! chroot "$ROOT" sh -c 'command -v Xvfb && command -v xdotool && command -v import' >/dev/null; then
  chroot "$ROOT" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends xvfb xauth xdotool imagemagick' \
    || { echo "setup-gimp.sh: could not install xvfb, xdotool and imagemagick in $ROOT" >&2; exit 1; }
fi

echo "$BINDS" | while read -r dir; do
  case "$dir" in
    /|/usr|/usr/*|/bin|/lib|/lib64|/etc|/var|/root)
      echo "setup-gimp.sh: will not bind $dir over the Debian 13 root's own; install hostplug in a venv" >&2
      exit 2 ;;
  esac
  mkdir -p "$ROOT$dir"
  # A bind left up by an earlier run may show a folder since deleted (a CI checkout made again at the same path:
  # the root then saw an empty, deleted folder, and the GIMP tests found no repository): bind the folder anew.
  if mountpoint -q "$ROOT$dir" && [ "$(stat -c %d:%i "$dir")" != "$(stat -c %d:%i "$ROOT$dir")" ]; then
    umount -R "$ROOT$dir" || { echo "setup-gimp.sh: $ROOT$dir shows a deleted folder and is busy" >&2; exit 1; }
  fi
  if mountpoint -q "$ROOT$dir"; then :; else mount --bind "$dir" "$ROOT$dir" && echo "bound $dir"; fi
done

# The check the tests rely on: hostplug, from this machine, runs inside the root.
EXE=$("$PYTHON" -c 'import sys; print(sys.executable)')
chroot "$ROOT" env -u PYTHONPATH "$EXE" -c 'import engine, hostplug.cli' \
  || { echo "setup-gimp.sh: hostplug does not import inside $ROOT" >&2; exit 1; }
chroot "$ROOT" test -f "$REPO/tests/setup-gimp.sh" \
  || { echo "setup-gimp.sh: this repository ($REPO) is not visible inside $ROOT" >&2; exit 1; }
echo "ready: GIMP 3 in $ROOT runs this machine's hostplug ($EXE)"
