# imnode — see README.md. Every target works from a clean checkout with Go installed.
GO        ?= go
BIN       := bin
PKGS      := ./...
CLUSTER   := data/cluster
NODES     := 1 2 3
# jepsen parameters (make jepsen DURATION=10m NODES_N=5 SEED=42 FAULTS=all)
DURATION  ?= 5m
NODES_N   ?= 3
SEED      ?= 0
FAULTS    ?= all
# bench parameters (make bench C=64 D=10s WORKLOAD=send_single)
C         ?= 1,16,64
D         ?= 10s
WORKLOAD  ?= send_single,send_group,read_user
BENCH_NODES ?= 127.0.0.1:10002,127.0.0.1:10012,127.0.0.1:10022
# optional config file for every node of `make cluster` (e.g. CONFIG=bench.yaml with pprof: true)
CONFIG    ?=
# how `make cluster` checks readiness (make cluster-tls sets https and the test CA)
SCHEME    ?= http
CURL_OPTS ?=
# how long `make cluster` waits for every node's /readyz, in seconds (a cold start of nodes
# holding millions of messages takes minutes: see README, "Snapshots at scale")
READY_WAIT ?= 120
# the secure mode of `make cluster-tls`: test certificates and its config under TLS_CLUSTER
TLS_CLUSTER := data/cluster-tls
TLS_CERTS   := $(TLS_CLUSTER)/certs
# `make jepsen TLS=1` runs the nodes in the secure mode
TLS       ?=
# `make jepsen RETENTION=15s` runs the nodes with messageRetention (the msglog checker takes removed messages as gone)
RETENTION ?=
# `make jepsen SNAPSHOT_EVERY=300` has the nodes snapshot every 300 entries and keep 50 behind, so nodes that
# join or fall behind are sent the whole state
SNAPSHOT_EVERY ?=

.PHONY: all build run cluster cluster-stop cluster-clean cluster-tls cluster-tls-stop cluster-tls-clean test test-unit test-blackbox jepsen bench bench-ceiling bench-shapes lint fmt fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/imnode ./cmd/imnode
	$(GO) build -o $(BIN)/imbench ./cmd/imbench
	$(GO) build -o $(BIN)/imjepsen ./jepsen/cmd/imjepsen
	$(GO) build -o $(BIN)/imws ./cmd/imws
	$(GO) build -o $(BIN)/imcert ./cmd/imcert
	$(GO) build -o $(BIN)/raftceiling ./cmd/raftceiling

# One node on the embedded defaults (HTTP 127.0.0.1:10002, data in data/node1). Ctrl-C stops it.
run: build
	$(BIN)/imnode

# Three nodes on this machine: HTTP 10002/10012/10022, raft +1, gossip +2, data under data/cluster.
cluster: build
	@mkdir -p $(CLUSTER)
	@for i in $(NODES); do \
	  p=$$((10002 + (i - 1) * 10)); \
	  if [ -f $(CLUSTER)/node$$i.pid ] && kill -0 $$(cat $(CLUSTER)/node$$i.pid) 2>/dev/null; then \
	    echo "node$$i already running"; continue; fi; \
	  $(BIN)/imnode -node-id node$$i -data-dir $(CLUSTER)/node$$i \
	    -http-addr 127.0.0.1:$$p -raft-addr 127.0.0.1:$$((p + 1)) -gossip-addr 127.0.0.1:$$((p + 2)) \
	    -bootstrap-expect 3 -join 127.0.0.1:10004,127.0.0.1:10014,127.0.0.1:10024 $(if $(CONFIG),-config $(CONFIG)) \
	    >>$(CLUSTER)/node$$i.log 2>&1 & echo $$! > $(CLUSTER)/node$$i.pid; \
	done
	@end=$$(( $$(date +%s) + $(READY_WAIT) )); while [ $$(date +%s) -lt $$end ]; do \
	  for p in 10002 10012 10022; do \
	    curl -sf -m 2 $(CURL_OPTS) -o /dev/null $(SCHEME)://127.0.0.1:$$p/readyz || { sleep 0.2; continue 2; }; \
	  done; echo "cluster ready: $(SCHEME)://127.0.0.1:10002 $(SCHEME)://127.0.0.1:10012 $(SCHEME)://127.0.0.1:10022"; exit 0; \
	done; echo "cluster not ready after $(READY_WAIT) s; the nodes keep starting (see $(CLUSTER)/node*.log;" \
	  "make cluster READY_WAIT=600 waits longer)"; exit 1

# Stops the three nodes without leaving the cluster (SIGINT), so `make cluster` restarts it as it was.
cluster-stop:
	@for i in $(NODES); do \
	  f=$(CLUSTER)/node$$i.pid; [ -f $$f ] || continue; pid=$$(cat $$f); \
	  kill -INT $$pid 2>/dev/null; \
	  for t in $$(seq 1 100); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	  kill -9 $$pid 2>/dev/null; rm -f $$f; echo "node$$i stopped"; \
	done

cluster-clean: cluster-stop
	rm -rf $(CLUSTER)

# The same three nodes in the secure mode: a test CA and a node certificate for 127.0.0.1
# (bin/imcert, kept in data/cluster-tls/certs), mutual TLS on raft, HTTPS on the API,
# verified forwarding and a random gossip key. Same ports as `make cluster`: stop one first.
cluster-tls: build
	@$(BIN)/imcert -dir $(TLS_CERTS) -hosts 127.0.0.1,localhost -nodes node >/dev/null
	@test -f $(TLS_CLUSTER)/imnode.yaml || printf 'gossipKey: "%s"\ntls:\n  certFile: %s\n  keyFile: %s\n  caFile: %s\n' \
	  "$$(head -c 32 /dev/urandom | base64)" $(CURDIR)/$(TLS_CERTS)/node.pem $(CURDIR)/$(TLS_CERTS)/node-key.pem \
	  $(CURDIR)/$(TLS_CERTS)/ca.pem > $(TLS_CLUSTER)/imnode.yaml
	@$(MAKE) --no-print-directory cluster CLUSTER=$(TLS_CLUSTER) CONFIG=$(TLS_CLUSTER)/imnode.yaml \
	  SCHEME=https CURL_OPTS="--cacert $(TLS_CERTS)/ca.pem"
	@echo "CA for clients: $(TLS_CERTS)/ca.pem (curl --cacert $(TLS_CERTS)/ca.pem https://127.0.0.1:10002/readyz)"

cluster-tls-stop:
	@$(MAKE) --no-print-directory cluster-stop CLUSTER=$(TLS_CLUSTER)

cluster-tls-clean: cluster-tls-stop
	rm -rf $(TLS_CLUSTER)

# The whole suite: vet, unit and in-process cluster tests, black-box tests against real
# processes and a short fault-injection run, all with -race.
test: build
	$(GO) vet $(PKGS)
	IMNODE_BIN=$(CURDIR)/$(BIN)/imnode $(GO) test -race -count=1 -timeout 25m $(PKGS)

test-unit:
	$(GO) test -race -count=1 -short $(PKGS)

jepsen: build
	$(BIN)/imjepsen -bin $(BIN)/imnode -nodes $(NODES_N) -duration $(DURATION) -seed $(SEED) -faults $(FAULTS) $(if $(TLS),-tls) $(if $(RETENTION),-retention $(RETENTION)) $(if $(SNAPSHOT_EVERY),-snapshot-every $(SNAPSHOT_EVERY))

bench: build
	$(BIN)/imbench -nodes $(BENCH_NODES) -workload $(WORKLOAD) -c $(C) -d $(D) -msg-bytes 300 -convs 1000 \
	  -group-size 1000 -targets -json bench-results/bench.json

# Bare raft on this machine (no HTTP): three hashicorp/raft nodes with raft-boltdb/v2 and a
# batching bbolt FSM in one process on loopback TCP (raft ports 23001-23003), ~300-byte
# entries, every apply fsync'd; the ceiling `make bench` figures are compared with.
bench-ceiling: build
	@mkdir -p bench-results
	$(BIN)/raftceiling -c $(C) -d $(D) -bytes 300 -json bench-results/ceiling.json

# Load shapes at c = SHAPE_C on a running `make cluster`, with the bare-raft ceiling measured
# before and after in the same run: few hot conversations (20, 90% of sends to 2) across all
# nodes, 1,000 spread conversations, only the leader, only the followers, a new
# connection per request, and sends to a group of 100 across all nodes. ~8 runs of D each.
# Each shape's run ends with a target line against 1.5x the bare raft measured before it.
SHAPE_C ?= 64
SHAPE_RUN = $(BIN)/imbench -nodes $(BENCH_NODES) -workload send_single -c $(SHAPE_C) -d $(D) -msg-bytes 300 -progress 0 \
  -ceiling bench-results/shapes-ceiling-before.json
bench-shapes: build
	@mkdir -p bench-results
	$(BIN)/raftceiling -c $(SHAPE_C) -d $(D) -bytes 300 -json bench-results/shapes-ceiling-before.json
	$(SHAPE_RUN) -convs 20 -hot-convs 2 -hot-frac 0.9 -json bench-results/shapes-hot.json
	$(SHAPE_RUN) -convs 1000 -json bench-results/shapes-spread.json
	$(SHAPE_RUN) -convs 20 -hot-convs 2 -hot-frac 0.9 -target leader -json bench-results/shapes-leader.json
	$(SHAPE_RUN) -convs 20 -hot-convs 2 -hot-frac 0.9 -target followers -json bench-results/shapes-followers.json
	$(SHAPE_RUN) -convs 20 -hot-convs 2 -hot-frac 0.9 -new-conns -json bench-results/shapes-newconns.json
	$(SHAPE_RUN) -workload send_group -group-size 100 -json bench-results/shapes-group.json
	$(BIN)/raftceiling -c $(SHAPE_C) -d $(D) -bytes 300 -json bench-results/shapes-ceiling-after.json

# Each fuzz target for FUZZTIME (go test runs one target at a time). make test runs their
# seeds; this searches beyond them. The corpus stays in Go's cache; a failing input is
# written under the package's testdata/fuzz, to be committed with its fix.
FUZZTIME ?= 2m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzApplyValidated$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzPostRoutes$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzRestoreBackup$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzScanContent$$' -fuzztime $(FUZZTIME) ./httpapi/

lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
