# metastore: `make run` starts a single-node server on 127.0.0.1:2379; `make test` runs
# every test (real etcd and etcdctl are installed from Debian's packages when missing,
# because the differential compat tests run each scenario against both).

CARGO ?= cargo
DATA_DIR ?= default.metastore
# etcd-client (a test dependency) compiles etcd's protos with prost-build, which runs a
# protoc-compatible compiler: protox, pure Rust, installed from crates.io. No system protoc.
PROTOX := $(CURDIR)/.tools/bin/protox
export PROTOC := $(PROTOX)

.PHONY: all build run test unit compat deps tools bench bench-cluster soak robustness fuzz fmt clippy check-layering clean

all: build

build: tools
	$(CARGO) build --release

run: build
	./target/release/metastore --name default --data-dir $(DATA_DIR) \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

tools: $(PROTOX)

$(PROTOX):
	$(CARGO) install protox --version 0.9.1 --features bin --locked --root $(CURDIR)/.tools

# Real etcd 3.4 and etcdctl for the differential tests.
deps: tools
	@if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then \
		echo "installing etcd-server and etcd-client from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client; \
	fi

# Each target that runs tests builds the binary together with those tests: cargo turns on
# the dev-dependencies' features for a build with tests, so a `--bins` build alone makes a
# different library, and the test build would then compile it (and the binary) again.
test: deps check-layering
	$(CARGO) build --release --all-targets
	METASTORE_BIN=$(CURDIR)/target/release/metastore ETCD_BIN=$$(command -v etcd) ETCDCTL_BIN=$$(command -v etcdctl) \
		$(CARGO) test --release --all-targets -- --test-threads=2
	# the embedding example must run, not only build
	$(CARGO) run --release --example embedded_meta

# The differential suite alone: side by side with real etcd, or against two endpoints
# (`make compat REF=http://host:port TARGET=http://host:port`, both fresh); one line per
# scenario says same or DIFFERENT (docs/compat.md).
compat: deps
	$(CARGO) build --release --bins
	COMPAT_REF=$(REF) COMPAT_TARGET=$(TARGET) \
	METASTORE_BIN=$(CURDIR)/target/release/metastore ETCD_BIN=$$(command -v etcd) ETCDCTL_BIN=$$(command -v etcdctl) \
		$(CARGO) test --release --test compat -- --test-threads=1 --nocapture

# Lower layers never import upper ones (ARCHITECTURE.md).
check-layering:
	@bash scripts/check-layering.sh

bench: deps
	$(CARGO) build --release --bins
	bash scripts/bench.sh

# The same comparison for 3-member clusters (issue 11): puts, a follower's linearizable
# ranges, and leader failover over FAILOVERS kills (default 10).
bench-cluster: deps
	$(CARGO) build --release --bins
	bash scripts/bench-cluster.sh

# Seeded random histories under faults (kill -9, SIGSTOP, a cut-off or delayed leader,
# failpoints, membership changes; 1 and 3 members), with the basic and the
# Kubernetes-shaped load, each checked for linearizability, the watch guarantees and lost
# acknowledged writes (tests/robustness). ROBUSTNESS_SCENARIOS (default 40) of
# ROBUSTNESS_SECS of load, ROBUSTNESS_JOBS at a time; ROBUSTNESS_SEED repeats a run,
# ROBUSTNESS_KINDS=0,3 picks fault kinds (indices into tests/robustness/main.rs's KINDS).
# A short fixed-seed subset runs in `make test`.
ROBUSTNESS_SCENARIOS ?= 40
ROBUSTNESS_SECS ?= 4
ROBUSTNESS_JOBS ?= 2
robustness: deps
	$(CARGO) build --release --bins --test robustness
	METASTORE_BIN=$(CURDIR)/target/release/metastore ROBUSTNESS_SCENARIOS=$(ROBUSTNESS_SCENARIOS) \
	ROBUSTNESS_SECS=$(ROBUSTNESS_SECS) ROBUSTNESS_SEED=$(ROBUSTNESS_SEED) ROBUSTNESS_KINDS=$(ROBUSTNESS_KINDS) \
	ROBUSTNESS_JOBS=$(ROBUSTNESS_JOBS) \
		$(CARGO) test --release --test robustness -- --ignored --nocapture robustness_long

# The fuzz targets of tests/fuzz (arbitrary bytes into every gRPC method, random HTTP
# requests, random command lines and config files, random commands through the applier
# against a model), FUZZ_CASES each (a short run of each is part of `make test`);
# FUZZ_SEED replays a run.
FUZZ_CASES ?= 1000000
fuzz: deps
	$(CARGO) build --release --bins --test fuzz
	METASTORE_BIN=$(CURDIR)/target/release/metastore FUZZ_CASES=$(FUZZ_CASES) FUZZ_SEED=$(FUZZ_SEED) \
		$(CARGO) test --release --test fuzz -- --nocapture

# The single-member kill -9 loop, then the cluster loop (leader kills, pauses and network
# partitions under load) for CLUSTER_SOAK_SECS (10 minutes unless given), then
# SOAK_ROBUSTNESS_SCENARIOS robustness histories.
CLUSTER_SOAK_SECS ?= 600
SOAK_ROBUSTNESS_SCENARIOS ?= 100
soak: deps
	$(CARGO) build --release --bins --test crash --test cluster_soak --test robustness
	METASTORE_BIN=$(CURDIR)/target/release/metastore METASTORE_SOAK=1 \
		$(CARGO) test --release --test crash -- --nocapture
	METASTORE_BIN=$(CURDIR)/target/release/metastore METASTORE_CLUSTER_SOAK_SECS=$(CLUSTER_SOAK_SECS) \
		$(CARGO) test --release --test cluster_soak -- --ignored --nocapture
	$(MAKE) robustness ROBUSTNESS_SCENARIOS=$(SOAK_ROBUSTNESS_SCENARIOS)

fmt:
	$(CARGO) fmt --all

clippy: tools
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf $(DATA_DIR)
