# Kettle: attested builds in an AMD SEV-SNP guest.
# `make demo` runs the demo end to end; `make test` runs every test.
# Both install what they need first (`make setup`, idempotent, as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
BUILD ?= $(CURDIR)/build
KETTLE_VENV ?= /opt/kettle-venv
export KETTLE_VENV BUILD

.PHONY: setup test lint demo image publish-image kernel ovmf init bundles bench clean check-reproducible fuzz dist dist-attested

setup:
	bash scripts/setup.sh

# The end-to-end tests boot build/image under QEMU, so the image comes first;
# the cargo-build test also needs the toolchain and root filesystem bundles.
# The house rules are gates: formatting, then clippy with every warning an error
# (the workspace's [workspace.lints]: docs, SAFETY notes, truncating casts).
test: setup lint image bundles
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	# fuzz/ is outside the workspace: without this its targets rot unseen (make fuzz is not in make test).
	$(CARGO) check --locked --manifest-path fuzz/Cargo.toml --all-targets

demo: setup
	bash scripts/demo.sh

# Where a build's time goes, each figure a ratio against a peer or a limit measured in
# the same run (README.md "Benchmarks"): prints a table, writes target/bench/*.json. The
# VM part needs `make image` (and `make bundles` for the cargo sample); without it, it is skipped.
bench: setup
	bash scripts/bench.sh

# Every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each, one at a time; prints
# runs, execs/s and findings, fails on any crash. Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

clean:
	rm -rf $(BUILD) out target dist

# --- the guest image -------------------------------------------------------
# Kernel and firmware are cached by the hash of their inputs under
# $(KETTLE_CACHE) (default /var/cache/kettle), so a rebuild is a copy.

kernel: setup
	bash scripts/build-kernel.sh

ovmf: setup
	bash scripts/build-ovmf.sh

init:
	bash scripts/build-init.sh

# build/image: bzImage, initramfs.cpio (kettle-init + Mozilla's CA roots from the
# pinned webpki-root-certs crate), OVMF.fd, manifest.json (with the tools that
# built kernel and firmware), launch-digests.json (EPYC-v4/Milan/Genoa x 1, 2, 4,
# 8 vCPUs) and provenance.json (pins, kettle-init's crates, rustc, CA roots, the
# commit, marked modified when the work tree has uncommitted changes).
# kettle-init embeds SOURCE_DATE_EPOCH (its clock floor, init/src/clock.rs):
# scripts/guest-epoch.sh, the time of the last commit that changed kettle-init's
# own inputs, so that committing docs, tests or a freshly published manifest does
# not change the image it describes.
image: kernel ovmf init
	$(CARGO) tree --locked --offline -q -p kettle-init -e normal \
		--target x86_64-unknown-linux-gnu --prefix none --format '{p}' >$(BUILD)/kettle-init.crates
	commit=$$(git rev-parse -q --verify HEAD 2>/dev/null || true); \
	modified=$$([ -n "$$commit" ] && [ -n "$$(git status --porcelain 2>/dev/null)" ] && echo --source-modified || true); \
	$(CARGO) run --release --locked -q -p kettle -- image \
		--init $(BUILD)/kettle-init --kernel $(BUILD)/bzImage \
		--ovmf $(BUILD)/OVMF.fd --out $(BUILD)/image \
		--kernel-pin kernel-config/source.pin --ovmf-pin kernel-config/ovmf.pin \
		--lockfile Cargo.lock --init-crates $(BUILD)/kettle-init.crates \
		--rustc-vv "$$($${RUSTC:-rustc} -vV)" \
		$${commit:+--source-commit $$commit} $$modified

# The published reference: image/published/manifest.json and launch-digests.json
# from `make image`, then checked with `kettle measure --manifest`. Commit the
# code first (kettle-init embeds the commit's time), then publish and commit
# image/published/ alone; `make check-reproducible` rebuilds that commit from a
# clean clone and compares with them. PUBLISH_DIRTY=1 publishes a modified tree
# anyway (a draft: a clean rebuild of the eventual commit will not match it).
PUBLISHED := image/published
publish-image:
	@if [ "$${PUBLISH_DIRTY:-0}" != 1 ] && [ -n "$$(git status --porcelain -- . ':(exclude)$(PUBLISHED)')" ]; then \
		git status --short -- . ':(exclude)$(PUBLISHED)' | head -n 20 >&2; \
		echo "publish-image: the work tree has uncommitted changes (above): commit them first, since kettle-init embeds the commit's time and a clean rebuild must match what is published (PUBLISH_DIRTY=1 to publish a draft anyway)" >&2; \
		exit 2; \
	fi
	$(MAKE) image
	mkdir -p $(PUBLISHED)
	cp $(BUILD)/image/manifest.json $(BUILD)/image/launch-digests.json $(PUBLISHED)/
	$(CARGO) run --release --locked -q -p kettle -- measure \
		--manifest $(PUBLISHED)/manifest.json --image $(BUILD)/image

# The pinned build root filesystem (Debian minbase + gcc, by debootstrap) and
# the Rust toolchain, as deterministic tarballs; SHA-256s in build/toolchain.sha256.
# Beside each, its read-only disk (EROFS + dm-verity, `kettle bundle disk`), deterministic too.
# With the tarballs already there it only rewrites the pins (build/bundles.json and
# build/image/bundles.json, which `make image` drops when it rewrites build/image).
bundles: setup
	@if [ -f $(BUILD)/rootfs.tar.gz ] && [ -f $(BUILD)/toolchain.tar.gz ]; then \
		echo "bundles: $(BUILD)/rootfs.tar.gz and toolchain.tar.gz exist (rm them to rebuild)"; \
		bash scripts/toolchain-bundle.sh --pins-only; \
	else bash scripts/toolchain-bundle.sh; fi

# Clones HEAD (uncommitted changes are not built) to a new path, builds the
# image there from an empty kernel/firmware cache and cargo target dir
# (~15-20 min) and compares every SHA-256 with image/published/. Not part of
# `make test`. `REPRO_FLAGS=--cached` reuses the caches (development).
REPRO_FLAGS ?=
check-reproducible: setup
	bash scripts/check-reproducible.sh $(REPRO_FLAGS)

# dist/kettle-<version>-x86_64-linux/ and its .tar.gz: the release a host operator or
# an auditor uses without a clone (README.md "Install"): a static kettle, the image,
# the bundles beside it, a policy template, completions, man pages, the CI scripts and
# SHA256SUMS. Reproducible: a second run gives the same tarball. DIST_DEPS= (empty)
# packs the image and bundles already in $(BUILD) as they are.
DIST_DEPS ?= image bundles
dist: $(DIST_DEPS)
	bash scripts/dist.sh

# The release with its own CLI built by Kettle in the CVM (scripts/dist-attested.sh):
# kettle.toml (Kettle's own recipe) built from the committed HEAD, verified under the
# policy.kettle.json it ships, bin/kettle that build's artifact and attestation/kettle/
# its output. Not part of `make test`: about an hour under TCG.
dist-attested: image bundles
	bash scripts/dist-attested.sh
