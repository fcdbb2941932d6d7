#!/usr/bin/env bash
# Creates (once) the Python venv holding the real VNC client used by
# tests/e2e_vnc.rs: vncdotool from PyPI, pinned. Idempotent and cached under
# target/: a venv whose stamp matches the pins is reused as is.
# Usage: tests/e2e/setup-venv.sh [VENV_DIR]   (default: target/vncvenv)
# Prints the venv's python path on stdout.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/vncvenv}"
# Pins: vncdotool and everything it pulls in, so every run uses the same
# client (bump together; `pip freeze` in the venv lists them).
pins=(
  vncdotool==1.4.2
  Twisted==26.10.0 pillow==13.0.0 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
  attrs==26.1.0 Automat==25.4.16 constantly==23.10.4 hyperlink==21.0.0 idna==3.20
  Incremental==24.11.0 packaging==26.4 typing_extensions==4.16.0 zope.interface==8.7
)
stamp="$venv/.accord-pins"
want="${pins[*]}"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi

# Debian's python3 (python3-venv) first; any python3 otherwise.
py=/usr/bin/python3
[ -x "$py" ] || py="$(command -v python3)"
lock="$venv.lock"
mkdir -p "$(dirname "$venv")"
exec 9>"$lock"
flock 9
# Another test may have built it while we waited for the lock.
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi
rm -rf "$venv"
"$py" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
echo "$want" >"$stamp"
echo "$venv/bin/python"
