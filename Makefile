# lokit — every target creates or reuses .venv through `install`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PACT_DO_NOT_TRACK := true

.PHONY: install lock run test lint proto bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/pip install -q uv==0.13.9
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip sync -q requirements.lock
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q --no-deps -e .
	@touch $(STAMP)

# Re-resolve the pinned dependency set after editing pyproject.toml.
lock:
	$(BIN)/uv pip compile pyproject.toml --group dev --generate-hashes --python-version 3.11 -q -o requirements.lock

run: install
	$(BIN)/python -m lokit run

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

test: install
	bash scripts/ensure-servers.sh
	$(MAKE) lint
	$(BIN)/python -m pytest -q

proto: install
	$(BIN)/python scripts/gen_proto.py

bench: install
	bash scripts/ensure-servers.sh
	@for b in bench/*.py; do case $$b in */_*) continue;; esac; echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) run data .pytest_cache .mypy_cache .ruff_cache
