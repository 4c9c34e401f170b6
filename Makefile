# The two commands a new user needs: `make demo` and `make test`. Both install what they need.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
EMBER := $(BUILD_DIR)/bin/ember

.PHONY: all deps build test unit demo bench bench-quick format tidy tidy-all clean

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

# clang-tidy on the files changed since their recorded clean run, adding them to the record
# (scripts/tidy-clean.txt; commit it). tidy-all checks and records every file (~20 min on 2 cores);
# with TIDY_FULL=1 both check everything with the costliest checks too, and record nothing.
tidy: build
	@bash scripts/tidy.sh $(BUILD_DIR) $(if $(filter 1,$(TIDY_FULL)),--all,--update)

tidy-all: build
	@bash scripts/tidy.sh $(BUILD_DIR) $(if $(filter 1,$(TIDY_FULL)),--all,--record)

clean:
	@rm -rf $(BUILD_DIR)
