#!/bin/sh
# Installs the Debian packages the packaging targets need, only when their
# command is missing. usage: installer/ensure-tools.sh COMMAND:PACKAGE ...
set -eu
missing=""
for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "apt-get install$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
