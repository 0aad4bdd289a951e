# Kettle: attested builds in an AMD SEV-SNP guest.
# `make demo` runs the demo end to end; `make test` runs every test.
# Both install what they need first (`make setup`, idempotent, as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
BUILD ?= $(CURDIR)/build
KETTLE_VENV ?= /opt/kettle-venv
export KETTLE_VENV BUILD

.PHONY: setup test demo image kernel ovmf init bundles bench clean check-reproducible

setup:
	bash scripts/setup.sh

# The end-to-end tests boot build/image under QEMU, so the image comes first;
# the cargo-build test also needs the toolchain and root filesystem bundles.
test: setup image bundles
	$(CARGO) test --workspace --locked

demo: setup
	bash scripts/demo.sh

bench: setup
	bash scripts/bench.sh

clean:
	rm -rf $(BUILD) out target

# --- the guest image -------------------------------------------------------
# Kernel and firmware are cached by the hash of their inputs under
# $(KETTLE_CACHE) (default /var/cache/kettle), so a rebuild is a copy.

kernel: setup
	bash scripts/build-kernel.sh

ovmf: setup
	bash scripts/build-ovmf.sh

init:
	bash scripts/build-init.sh

image: kernel ovmf init
	$(CARGO) run --release --locked -q -p kettle -- image \
		--init $(BUILD)/kettle-init --kernel $(BUILD)/bzImage \
		--ovmf $(BUILD)/OVMF.fd --out $(BUILD)/image \
		--meta "rustc=$$(rustc -V)" \
		--meta "kernel-source=linux-source-6.12 $$(sed -n 's/^version=//p' kernel-config/source.pin)" \
		--meta "ovmf-source=edk2 $$(sed -n 's/^version=//p' kernel-config/ovmf.pin)"

# The pinned build root filesystem (Debian minbase + gcc, by debootstrap) and
# the Rust toolchain, as deterministic tarballs; SHA-256s in build/toolchain.sha256.
bundles: setup
	@if [ -f $(BUILD)/rootfs.tar.gz ] && [ -f $(BUILD)/toolchain.tar.gz ]; then \
		echo "bundles: $(BUILD)/rootfs.tar.gz and toolchain.tar.gz exist (rm them to rebuild)"; \
	else bash scripts/toolchain-bundle.sh; fi

# Builds the image twice from clean build dirs and compares every SHA-256
# (`scripts/check-reproducible.sh --full` also rebuilds kernel and firmware).
check-reproducible: setup
	bash scripts/check-reproducible.sh
