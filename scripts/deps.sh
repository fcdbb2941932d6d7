#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only those missing.
# Usage: scripts/deps.sh run|test
set -euo pipefail

build_pkgs=(
  # The pipewire crate (GNOME Wayland's screen frames): libpipewire's headers,
  # found by pkg-config, bound by bindgen (libclang).
  pkg-config libpipewire-0.3-dev libclang-dev
)
run_pkgs=(
  "${build_pkgs[@]}"
  # What the agent's window and tray load at run time (winit/glutin dlopen them).
  libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 libxkbcommon0
  libgl1 libegl1 libgl1-mesa-dri dbus
  # A VNC server to share the screen, and openssl for `make run`'s demo.
  x11vnc
)
test_pkgs=(
  "${run_pkgs[@]}"
  # Real peers for the end-to-end tests.
  xvfb openbox xdotool x11-utils xinput xclip imagemagick dbus-x11
  # tests/ui_window.sh: a terminal to type into, xrandr for two monitors,
  # wmctrl to put a window above the banner; xsetroot (e2e idle test).
  xterm x11-xserver-utils wmctrl
  tigervnc-standalone-server tigervnc-tools
  # tests/launch.rs: the scraping server Accord starts itself.
  tigervnc-scraping-server
  # A real viewer with its default Tight encoding, through the server framer.
  tigervnc-viewer
  rsyslog rsyslog-gnutls
  python3-venv python3-pip
  procps psmisc iproute2 curl ca-certificates
)

case "${1:-}" in
  run) want=("${run_pkgs[@]}") ;;
  test) want=("${test_pkgs[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

# Several X servers started at once race on creating /tmp/.X11-unix
# ("mkdir(/tmp/.X11-unix) failed, errno = 17"): make it before any starts.
if [ "$1" = test ]; then $([ "$(id -u)" -eq 0 ] || echo sudo) install -d -m 1777 -o root -g root /tmp/.X11-unix; fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing missing Debian packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
