#!/bin/sh
# System packages the test suite uses beyond pip: darktable-cli, for the darktable round trip in
# tests/test_sidecar.py (without it that test is skipped, with the reason). Debian/Ubuntu; idempotent, and
# instant when everything is already installed. Runs apt-get as root, or through sudo.
set -eu

missing=""
command -v darktable-cli >/dev/null 2>&1 || missing="$missing darktable"
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/setup-system.sh: no apt-get here; install$missing by hand (the tests that need it are skipped)" >&2
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
