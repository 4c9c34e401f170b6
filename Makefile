# The two commands a new user needs: `make demo` and `make test`. Both install what they need.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
EMBER := $(BUILD_DIR)/bin/ember

.PHONY: all deps build test unit demo bench bench-quick format tidy clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The whole suite: unit, privileged (root, namespaces, cgroups) and e2e tests.
test: build
	@bash scripts/run-tests.sh $(BUILD_DIR)

unit: build
	@ctest --test-dir $(BUILD_DIR) -L unit --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(EMBER)

bench: build
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target ember-engine-bench
	@bash bench/run.sh $(EMBER)

bench-quick: build
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target ember-engine-bench
	@bash bench/run.sh $(EMBER) --quick

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h' '*.c')

tidy: build
	@bash scripts/tidy.sh $(BUILD_DIR)

clean:
	@rm -rf $(BUILD_DIR)
