# Accord — the two commands of the README, and what they need.
#   make run    runs the agent on a demo PKI, loopback only
#   make test   runs every test (units, integration, real peers)
#   make soak   long relay soaks (not part of make test): 10 × 60 s of
#               full-speed frames both ways, then 10 min of real x11vnc
SHELL := /bin/bash
.DEFAULT_GOAL := run
CARGO ?= cargo
DEMO_DIR ?= target/demo
export CARGO_TERM_COLOR ?= never

include installer/deb.mk
include installer/boot.mk

.PHONY: run test deps-run deps-test build lint unit e2e demo fuzz-ci soak

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

build:
	$(CARGO) build --locked

$(DEMO_DIR)/policy.toml: | build
	target/debug/accord pki demo $(DEMO_DIR)

demo: $(DEMO_DIR)/policy.toml

run: deps-run build demo
	@echo "Accord demo agent on 127.0.0.1:5988 (Ctrl-C to stop). From another terminal:"
	@echo "  target/debug/accord connect 127.0.0.1 --ca $(DEMO_DIR)/ca.pem --cert $(DEMO_DIR)/technician.pem --key $(DEMO_DIR)/technician.key --ticket DEMO-1 --reason 'Essai'"
	target/debug/accord agent --policy $(DEMO_DIR)/policy.toml

lint:
	python3 scripts/module-graph.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	# Benches are programs that print figures (`cargo bench`), not tests.
	ACCORD_REQUIRE_PEERS=1 $(CARGO) test --locked --lib --bins --tests

# Tests against real peers, run as scripts because they drive whole programs.
e2e: build
	@for t in tests/*.sh; do [ -e "$$t" ] || continue; echo "== $$t"; bash "$$t" || exit 1; done

# No stall, ever: the ignored soak tests, one at a time.
soak: deps-test
	$(CARGO) test --locked --test relay_soak -- --ignored --nocapture --test-threads=1
	ACCORD_REQUIRE_PEERS=1 $(CARGO) test --locked --test e2e_vnc -- --ignored --nocapture --test-threads=1 soak_

fuzz-ci:
	scripts/fuzz-ci.sh 60

test: deps-test lint unit e2e fuzz-ci deb-test boot-test boot-wayland-test msi-test
	@echo "all tests passed"
