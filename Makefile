# govmtools: the two set-up commands are `make demo` and `make test`.
GO      ?= go
BIN     := bin
PKGS    := ./...
# Every test tier the machine supports; CI sets GOVMTOOLS_REQUIRE_ALL=1 so
# a missing capability fails instead of skipping.
TESTFLAGS ?= -race -count=1 -timeout 14m
# The version every binary prints for --version (internal/version),
# linked in through GOFLAGS so that it also reaches the binaries the tests
# build (internal/testutil.Binaries runs go build).
# scripts/version.sh: git describe of the last v* tag, in a shape
# packages accept.
VERSION ?= $(shell scripts/version.sh)
export GOFLAGS := $(strip $(shell $(GO) env GOFLAGS) -ldflags=-X=github.com/govmtools/govmtools/internal/version.version=$(VERSION))
LDFLAGS := -X github.com/govmtools/govmtools/internal/version.version=$(VERSION)
# Package architectures (Go names).
PKG_ARCHES ?= amd64,arm64

.PHONY: all build test test-arm64 lint cross fuzz demo bench clean test-deps package mutate

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOARCH=arm64 $(GO) vet $(PKGS)

cross:
	GOARCH=arm64 $(GO) build $(PKGS)

# test-deps installs what the test tiers need (apt packages, Debian's
# open-vm-tools for the peer tier); each script is a no-op when done.
test-deps:
	@for s in scripts/test-deps.d/*.sh; do [ -x "$$s" ] && "$$s" || true; done

test: test-deps lint build cross
	$(GO) test $(TESTFLAGS) $(PKGS)
	scripts/test-arm64.sh

# test-arm64 is the arm64 tier alone (part of test): unit, sim and e2e
# tests compiled for arm64, run under qemu-user (CONTRIBUTING.md, "The
# arm64 tier"); run make test-deps first for the emulator and binfmt_misc.
test-arm64:
	scripts/test-arm64.sh

fuzz:
	scripts/fuzz.sh $${FUZZTIME:-10s}

demo:
	scripts/demo.sh

bench: build
	$(GO) run ./bench

# mutate runs mutation testing (go-gremlins) over the core packages and
# writes docs/mutation.md; slow, not in CI. MUTATE=name... picks entries.
mutate:
	scripts/mutate.sh $(MUTATE)

# package builds the .deb and .rpm of every architecture into dist/
# (static binaries, and vmware-vix-helper with cgo: gcc and, for arm64,
# Debian's aarch64 cross compiler and libpam0g-dev:arm64 from make
# test-deps; nfpm as a library: packaging/cmd/mkpkg).
package:
	$(GO) run ./packaging/cmd/mkpkg --version '$(VERSION)' --out dist --arch $(PKG_ARCHES)

clean:
	rm -rf $(BIN) dist
