# Web Tracker. `make help` lists the targets.
SHELL   := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/tracker
# Tools run at pinned versions through the Go toolchain: nothing to install.
STATICCHECK := go run honnef.co/go/tools/cmd/staticcheck@v0.8.2
DLV         := go run github.com/go-delve/delve/cmd/dlv@v1.27.2
FUZZTIME    ?= 30s

BENCH_OUT   ?= bench-out
# The tracker before time ranges, built from this commit by make bench, is the
# baseline of the time-range ingest figures.
BEFORE_RANGES ?= ab5c7a8
# The durability and Redis runs: ingest only, shorter rounds, to keep make bench within 5 minutes.
DURABLE_LOAD = -workloads ingest-uniform -rounds 3 -duration 2s -warmup 500ms -latency-duration 0

.PHONY: help run run-prod build test lint cover fuzz debug bench clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## Run with development defaults (text logs at debug level, :8080); reads .env when present.
	@set -a; [ ! -f .env ] || . ./.env; set +a; \
	TRACKER_LOG_FORMAT=$${TRACKER_LOG_FORMAT:-text} TRACKER_LOG_LEVEL=$${TRACKER_LOG_LEVEL:-debug} \
	go run -ldflags "-X main.version=$(VERSION)" ./cmd/tracker

run-prod: build ## Build, then run the production profile (JSON logs, drain delay on shutdown).
	@set -a; [ ! -f .env ] || . ./.env; set +a; \
	TRACKER_LOG_FORMAT=$${TRACKER_LOG_FORMAT:-json} TRACKER_LOG_LEVEL=$${TRACKER_LOG_LEVEL:-info} \
	TRACKER_SHUTDOWN_DELAY=$${TRACKER_SHUTDOWN_DELAY:-5s} \
	./$(BIN)

build: ## Build a static, trimmed, version-stamped binary into bin/.
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tracker

test: ## Vet, then run every test under the race detector, and the store's once more without it.
	go vet ./...
	go test -race -count=1 -timeout 170s ./...
	@# Under -race the store keeps its tables on the Go heap, so that the race
	@# detector sees them; this run covers the off-heap arena used in production.
	go test -count=1 ./internal/infra/memstore/

lint: ## gofmt, go vet and staticcheck; fails on any finding.
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...

cover: ## Run the tests with coverage; writes cover.out and prints per-function figures.
	go test -count=1 -coverprofile=cover.out ./...
	go tool cover -func=cover.out | tail -n 1

fuzz: ## Run every fuzz target for FUZZTIME each (default 30s).
	@set -e; for pkg in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

debug: ## Start the service under Delve, headless on 127.0.0.1:2345 (attach from VS Code: "Attach to make debug").
	$(DLV) debug --headless --listen=127.0.0.1:2345 --api-version=2 --accept-multiclient ./cmd/tracker -- -log-level=debug

bench: build ## Measure (about 10 min): store benchmarks, memory per pair and per day, ranges, allocations per request, HTTP load against a bare handler and the tracker before time ranges.
	@mkdir -p $(BENCH_OUT)
	@echo "== store (benchstat format: $(BENCH_OUT)/store.txt)"
	go test -run '^$$' -bench 'Record|Visitors|Hash|Canonical' -benchmem -count 5 -benchtime 0.5s ./internal/infra/memstore/ ./internal/domain/ | tee $(BENCH_OUT)/store.txt
	@echo "== resident memory per pair, each size in a fresh process"
	go test -run '^$$' -bench 'ResidentMemory/pairs=1M$$' -benchtime 1x ./internal/infra/memstore/ | tee $(BENCH_OUT)/memory.txt
	go test -run '^$$' -bench 'ResidentMemory/pairs=10M$$' -benchtime 1x ./internal/infra/memstore/ | tee -a $(BENCH_OUT)/memory.txt
	@echo "== bounded memory: 20M random pairs into a store limited to 64 MiB (resident memory, error of the estimates)"
	go test -run '^$$' -bench 'BoundedMemory$$' -benchtime 1x ./internal/infra/memstore/ | tee $(BENCH_OUT)/bounded.txt
	@echo "== bounded memory with time ranges: the same, each view at a random quarter of 30 days (a process of its own)"
	go test -run '^$$' -bench 'BoundedMemoryWithTime' -benchtime 1x ./internal/infra/memstore/ | tee $(BENCH_OUT)/bounded-days.txt
	@echo "== bounded memory over HTTP: 500k unique pairs on 100 pages into a tracker with -memory-limit 4MiB"
	go run ./cmd/loadgen -tracker $(BIN) -workloads "" -memory-pairs 500000 -pages 100 -tracker-args "-memory-limit 4MiB" \
		-out $(BENCH_OUT)/bounded-http.json | tee $(BENCH_OUT)/bounded-http.txt
	@echo "== allocations per request through a real server: tracker against bare net/http"
	go test -run '^$$' -bench 'Serve' -benchtime 20000x -count 3 ./cmd/tracker/ | tee $(BENCH_OUT)/serve.txt
	@echo "== HTTP load: tracker against a bare net/http handler, interleaved A/B rounds"
	go run ./cmd/loadgen -tracker $(BIN) -rounds 4 -latency-duration 2s -out $(BENCH_OUT)/loadgen.json | tee $(BENCH_OUT)/loadgen.txt
	@echo "== time ranges: a range of 30 and 365 days of a page of 100,000 visitors a month, exact and estimated, against its all-time count; the error of estimated ranges"
	go test -run '^$$' -bench 'Range|RecordWithTime' -benchmem -count 3 -benchtime 0.5s ./internal/infra/memstore/ | tee $(BENCH_OUT)/ranges.txt
	@echo "== time ranges: resident memory per (page, visitor, day) at 10 million, in a fresh process"
	go test -run '^$$' -bench 'ResidentMemoryDays' -benchtime 1x ./internal/infra/memstore/ | tee $(BENCH_OUT)/memory-days.txt
	@echo "== time ranges: ingest against the tracker before them ($(BEFORE_RANGES)), events without and with a time, interleaved A/B rounds"
	rm -rf $(BENCH_OUT)/before-ranges && mkdir -p $(BENCH_OUT)/before-ranges
	git archive $(BEFORE_RANGES) | tar -x -C $(BENCH_OUT)/before-ranges
	cd $(BENCH_OUT)/before-ranges && CGO_ENABLED=0 go build -trimpath -o ../tracker-before-ranges ./cmd/tracker
	go run ./cmd/loadgen -tracker $(BIN) -baseline tracker -baseline-tracker $(BENCH_OUT)/tracker-before-ranges \
		-workloads ingest-uniform,ingest-timed -rounds 15 -duration 2s -warmup 500ms -latency-duration 0 \
		-out $(BENCH_OUT)/ranges-ingest.json | tee $(BENCH_OUT)/ranges-ingest.txt
	@echo "== durability: a start over 10 million pairs (9M in the snapshot, 1M in the log)"
	go test -run '^$$' -bench Recovery -benchtime 1x ./internal/infra/diskstore/ | tee $(BENCH_OUT)/recovery.txt
	@echo "== durability: ingest with -data-dir against the memory-only tracker, interleaved A/B rounds"
	rm -rf $(BENCH_OUT)/data-interval $(BENCH_OUT)/data-always
	go run ./cmd/loadgen -tracker $(BIN) -baseline tracker -tracker-args "-data-dir $(BENCH_OUT)/data-interval" \
		$(DURABLE_LOAD) -out $(BENCH_OUT)/durable-interval.json | tee $(BENCH_OUT)/durable-interval.txt
	go run ./cmd/loadgen -tracker $(BIN) -baseline tracker -tracker-args "-data-dir $(BENCH_OUT)/data-always -fsync always" \
		$(DURABLE_LOAD) -out $(BENCH_OUT)/durable-always.json | tee $(BENCH_OUT)/durable-always.txt
	@echo "== Redis: ingest through -store=redis against the memory-only tracker (loadgen starts its own redis-server)"
	@if command -v redis-server >/dev/null; then \
		go run ./cmd/loadgen -tracker $(BIN) -redis -baseline tracker -tracker-args "-store redis -redis-url {redis-url}" \
			$(DURABLE_LOAD) -out $(BENCH_OUT)/redis.json | tee $(BENCH_OUT)/redis.txt && \
		go test -run '^$$' -bench RedisMemory -benchtime 1x ./internal/infra/redisstore/ | tee $(BENCH_OUT)/redis-memory.txt; \
	else echo "*** SKIPPED: redis-server is not installed (apt-get install redis-server) ***"; fi
	@echo "== Redis Cluster (3 masters, 3 replicas): two trackers on it against two on one redis-server, interleaved rounds; spread of 10,000 pages; 5 failovers with -redis-wait-replicas 1 (about 2 min)"
	@if command -v redis-server >/dev/null; then \
		go test -run '^$$' -bench RedisClusterIngest -benchtime 1x -v ./cmd/tracker/ | tee $(BENCH_OUT)/redis-cluster.txt && \
		go test -run '^$$' -bench 'ClusterSpread|ClusterFailovers' -benchtime 1x -v ./internal/infra/redisstore/ | tee -a $(BENCH_OUT)/redis-cluster.txt; \
	else echo "*** SKIPPED: redis-server is not installed (apt-get install redis-server) ***"; fi

clean: ## Remove build, coverage and benchmark output.
	rm -rf bin cover.out $(BENCH_OUT)
