# keras-lua: the two commands a newcomer needs (make demo, make test) and a few more.
MAKEFLAGS += --no-print-directory
BUILD ?= build
JOBS  ?= $(shell nproc)
DEPS  := cmake pkg-config lua5.4 liblua5.4-dev lua-busted libopenblas-dev zlib1g-dev gcc make gzip python3-numpy \
         openmpi-bin libopenmpi-dev \
         luarocks lua-check
LUAENV := LUA_PATH_5_4='$(CURDIR)/$(BUILD)/lua/?.lua;$(CURDIR)/$(BUILD)/lua/?/init.lua;;' \
          LUA_CPATH_5_4='$(CURDIR)/$(BUILD)/lua/?.so;;'

.PHONY: all deps build test demo install clean bench bench-quick test-asan test-tsan fuzz

all: build

# Installs the Debian packages that are missing (apt-get update first). Needs root.
deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The sparse tensor tour (CSR, row_sparse, the sparse ops), then the sparse linear
# regression tutorial: Dense(1, sparse_weight) trained with model:fit on a CSR dataset.
demo: build
	$(LUAENV) lua5.4 examples/sparse_tour.lua
	@echo
	$(LUAENV) lua5.4 examples/sparse_linear_regression.lua

install: build
	cmake --install $(BUILD) --prefix /usr/local

clean:
	rm -rf $(BUILD)

# Benchmarks against peers (installs them if missing); writes bench/results.md. See bench/README.md.
bench: build
	bench/run --full

# The same benchmark scripts on tiny sizes (also run by the test suite, no timing asserted).
bench-quick: build
	bench/run --quick

# The whole suite under ASan + UBSan (see docs/RELIABILITY.md).
test-asan: deps
	tools/test-asan

# Two lua_States on two threads, and tensors released across threads, under ThreadSanitizer.
test-tsan: deps
	tools/test-tsan

# libFuzzer targets, each for FUZZ_SECONDS (default 60).
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) tools/fuzz
