# installer/deb.mk: packaging targets (Debian package, Windows MSI checks).
# The top-level Makefile has:   include installer/deb.mk
#
#   make deb       target/debian/accord_<version>-1_<arch>.deb (cargo-deb)
#   make deb-lint  lintian --fail-on error,warning on it
#   make deb-test  deb + lint + fresh-root install test (root: debootstrap, chroot)
#   make msi-test  builds the MSI with wixl (stand-in accord.exe) and checks its tables
#   make icons     re-renders assets/icons/*.png from the SVG sources
# Missing tools are installed (cargo-deb with cargo install --locked; Debian
# packages with apt-get, as root) only when missing.

PKG_CARGO ?= cargo
CARGO_DEB_VERSION ?= 3.8.0
PKG_JOBS ?= 2
PKG_NICE ?= nice
PKG_TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
DEB_DIR := $(PKG_TARGET_DIR)/debian
GEN_DOCS_DIR := $(PKG_TARGET_DIR)/release/gen-docs
CRATE_VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_FILE := $(DEB_DIR)/accord_$(CRATE_VERSION)-1_$(DEB_ARCH).deb
# the "newer build" of the upgrade test: same tree, bumped version
DEB_UPGRADE_VERSION := $(CRATE_VERSION)-1+upgradetest1
DEB_UPGRADE_FILE := $(DEB_DIR)/accord_$(DEB_UPGRADE_VERSION)_$(DEB_ARCH).deb
# cargo-deb removes older .debs of the package from its output dir: the test copies them aside
DEB_TEST_DEBS := $(PKG_TARGET_DIR)/deb-test-debs
export DEB_TEST_CACHE ?= $(PKG_TARGET_DIR)/debootstrap-cache
export DEB_TEST_WORK ?= $(PKG_TARGET_DIR)/deb-test
export MSI_TEST_WORK ?= $(PKG_TARGET_DIR)/msi-test

.PHONY: deb deb-lint deb-test msi-test icons cargo-deb-tool deb-tools msi-tools

cargo-deb-tool:
	@if [ "$$($(PKG_CARGO) deb --version 2>/dev/null)" != "cargo-deb $(CARGO_DEB_VERSION)" ]; then \
	    echo "cargo install cargo-deb $(CARGO_DEB_VERSION)"; \
	    $(PKG_NICE) $(PKG_CARGO) install cargo-deb --version $(CARGO_DEB_VERSION) --locked -j$(PKG_JOBS); \
	fi

deb-tools:
	@installer/ensure-tools.sh lintian:lintian debootstrap:debootstrap desktop-file-validate:desktop-file-utils

msi-tools:
	@installer/ensure-tools.sh wixl:wixl msiinfo:msitools

deb: cargo-deb-tool
	$(PKG_NICE) $(PKG_CARGO) build --locked --release -j$(PKG_JOBS) --bin accord
	rm -rf $(GEN_DOCS_DIR)
	# dev profile on purpose: examples pull in dev-dependencies, whose features
	# would rebuild the GUI stack a second time in release; `cargo test
	# --all-targets` (make test) has already built this one.
	$(PKG_NICE) $(PKG_CARGO) run --locked -j$(PKG_JOBS) --example gen_docs -- $(GEN_DOCS_DIR)
	# cargo-deb compresses man pages it copies, but not files under target/release/
	gzip -9n $(GEN_DOCS_DIR)/man/*.1
	mkdir -p $(DEB_DIR)
	$(PKG_CARGO) deb --no-build -o $(DEB_FILE)
	@echo "deb: $(DEB_FILE) $$(du -k $(DEB_FILE) | cut -f1) KiB, installed size $$(dpkg-deb -f $(DEB_FILE) Installed-Size) KiB"

deb-lint: deb deb-tools
	lintian --fail-on error,warning --display-info $(DEB_FILE)
	@echo "deb-lint: lintian clean (no error, no warning)"

deb-test: deb-lint deb-tools
	rm -rf $(DEB_TEST_DEBS); mkdir -p $(DEB_TEST_DEBS)
	cp $(DEB_FILE) $(DEB_TEST_DEBS)/
	$(PKG_CARGO) deb --no-build --deb-version $(DEB_UPGRADE_VERSION) -o $(DEB_UPGRADE_FILE)
	cp $(DEB_UPGRADE_FILE) $(DEB_TEST_DEBS)/
	installer/deb-test.sh $(DEB_TEST_DEBS)/$(notdir $(DEB_FILE)) $(DEB_TEST_DEBS)/$(notdir $(DEB_UPGRADE_FILE))

msi-test: msi-tools
	installer/msi-test.sh

icons:
	@installer/ensure-tools.sh rsvg-convert:librsvg2-bin
	installer/render-icons.sh
