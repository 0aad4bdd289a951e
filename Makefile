# Kettle: attested builds in an AMD SEV-SNP guest.
# `make demo` runs the demo end to end; `make test` runs every test.
# Both install what they need first (`make setup`, idempotent, as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
BUILD ?= $(CURDIR)/build
KETTLE_VENV ?= /opt/kettle-venv
export KETTLE_VENV

.PHONY: setup test demo image kernel ovmf init bench clean

setup:
	bash scripts/setup.sh

test: setup
	$(CARGO) test --workspace --locked

demo: setup
	bash scripts/demo.sh

bench: setup
	bash scripts/bench.sh

clean:
	rm -rf $(BUILD) out target
