# installer/boot.mk: the boot test. The top-level Makefile
# has:   include installer/boot.mk   (after installer/deb.mk)
#
#   make boot-test   boots a Debian 12 container (systemd-nspawn, real systemd
#                    and logind), installs the built .deb in it with apt-get
#                    and checks the service, its sandbox, the helpers in real
#                    logind sessions (in a session, and started by XDG
#                    autostart), lock, user switch, restart and purge
#                    (tests/boot/boot-test.sh). Root only.
#   make boot-wayland-test   the same container's root plus GNOME Shell: a
#                    seat0 Wayland session (gnome-shell --headless, PipeWire,
#                    WirePlumber), seen through the test's own Mutter
#                    ScreenCast/RemoteDesktop client, and `accord connect` to
#                    it (tests/boot/wayland-test.sh). Root only; in
#                    `make test` after boot-test (same .deb, same base
#                    root). BOOT_DEB=path/to.deb tests that .deb instead of
#                    building one.
#   make bench-wayland   not in `make test`: figures for Accord's GNOME screen
#                    server against x11vnc on Xvfb in the same container and
#                    run (click to frame, updates and bytes per second, CPU
#                    per update; tests/boot/wayland-bench.sh). Root only;
#                    BOOT_DEB as for boot-wayland-test.
#
# The container's root is built once (debootstrap + apt-get, a few minutes)
# and cached outside the tree in $(ACCORD_TEST_CACHE), keyed by suite and
# package list; the host tools are installed here when missing.

export ACCORD_TEST_CACHE ?= /var/cache/accord-tests
export BOOT_TEST_WORK ?= $(PKG_TARGET_DIR)/boot-test
BOOT_WAYLAND_WORK ?= $(PKG_TARGET_DIR)/boot-wayland-test
BENCH_WAYLAND_WORK ?= $(PKG_TARGET_DIR)/bench-wayland

.PHONY: boot-test boot-wayland-test bench-wayland boot-tools

boot-tools:
	@installer/ensure-tools.sh systemd-nspawn:systemd-container debootstrap:debootstrap \
	    zstd:zstd nsenter:util-linux findmnt:util-linux

# In `make test` deb-test runs first, and its upgrade build makes cargo-deb
# remove this version's .deb from target/debian (it keeps one version of a
# package): the copy deb-test set aside is the same file.
boot-test: deb boot-tools
	@if [ -f "$(DEB_FILE)" ]; then deb="$(DEB_FILE)"; else deb="$(DEB_TEST_DEBS)/$(notdir $(DEB_FILE))"; fi; \
	    echo "tests/boot/boot-test.sh $$deb"; tests/boot/boot-test.sh "$$deb"

# The Wayland root is the X11 root above plus GNOME Shell (a cached layer,
# tests/boot/root.sh boot_root_layer): one debootstrap for both tests.
boot-wayland-test: $(if $(BOOT_DEB),,deb) boot-tools
	@if [ -n "$(BOOT_DEB)" ]; then deb="$(BOOT_DEB)"; elif [ -f "$(DEB_FILE)" ]; then deb="$(DEB_FILE)"; \
	    else deb="$(DEB_TEST_DEBS)/$(notdir $(DEB_FILE))"; fi; \
	    echo "tests/boot/wayland-test.sh $$deb"; BOOT_TEST_WORK="$(BOOT_WAYLAND_WORK)" tests/boot/wayland-test.sh "$$deb"

# The same root and .deb as boot-wayland-test; prints a table (also in
# $(BENCH_WAYLAND_WORK)/bench.txt).
bench-wayland: $(if $(BOOT_DEB),,deb) boot-tools
	@if [ -n "$(BOOT_DEB)" ]; then deb="$(BOOT_DEB)"; elif [ -f "$(DEB_FILE)" ]; then deb="$(DEB_FILE)"; \
	    else deb="$(DEB_TEST_DEBS)/$(notdir $(DEB_FILE))"; fi; \
	    echo "tests/boot/wayland-bench.sh $$deb"; BOOT_TEST_WORK="$(BENCH_WAYLAND_WORK)" tests/boot/wayland-bench.sh "$$deb"
