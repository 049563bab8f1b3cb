# stream_al: the two commands are `make demo` and `make test`; the rest are their parts.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
KAFKA  := deploy/kafka/kafka-local

.PHONY: install demo demo-label test lint bench bench-scale broker-start broker-stop prometheus chromium clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## A bundled dataset through a real broker, the service and a simulated oracle.
demo: $(STAMP)
	$(BIN)/python -m stream_al.demo.showcase --kafka-launcher $(KAFKA)

## The demo with you as the labeler, in the browser (instead of the simulated oracle).
demo-label: $(STAMP)
	$(BIN)/python -m stream_al.demo.showcase --kafka-launcher $(KAFKA) --label

## The whole suite: unit, integration on a real Kafka broker, a real Prometheus.
test: $(STAMP) prometheus chromium
	$(KAFKA) fetch
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check stream_al tests bench
	$(BIN)/ruff format --check stream_al tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/label_efficiency.py
	$(BIN)/python bench/throughput.py --kafka-launcher $(KAFKA)

## 1, 2 and 4 replicas in one group over 4 partitions: rate, CPU per sample, budget, labels.
bench-scale: $(STAMP)
	$(BIN)/python bench/scale_out.py --kafka-launcher $(KAFKA)

broker-start:
	$(KAFKA) start

broker-stop:
	$(KAFKA) stop

## Debian's Prometheus, for the dashboard and alert tests.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || deploy/prometheus/install-prometheus

## Debian's chromium and chromedriver, for the labeling app's browser tests.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || deploy/browser/install-chromium

clean:
	-$(KAFKA) stop
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
