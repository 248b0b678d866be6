#!/bin/sh
# System packages the test suite uses beyond pip: darktable-cli, for the darktable round trip in
# tests/test_sidecar.py, and exiftool, which reads a JPEG's Extended XMP as Adobe's tools do
# (tests/test_output.py); without them those tests are skipped, with the reason. Debian/Ubuntu; idempotent, and
# instant when everything is already installed. Runs apt-get as root, or through sudo.
set -eu

missing=""
command -v darktable-cli >/dev/null 2>&1 || missing="$missing darktable"
command -v exiftool >/dev/null 2>&1 || missing="$missing libimage-exiftool-perl"
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/setup-system.sh: no apt-get here; install$missing by hand (the tests that need it are skipped)" >&2
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
