# Two commands for a fresh machine: `make app` serves the explorer, `make test` runs the suite.
# Both create .venv on first use: torch's CPU wheel goes in first so nothing pulls a CUDA build.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
PORT   ?= 5006
TORCH  ?= torch==2.13.0
THE_WELL ?= the-well==1.2.0
AZULA    ?= azula==0.11.1

.PHONY: app test lint env clean

env: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# test oracles whose declared deps would pull a CUDA torch: install them alone
	$(BIN)/python -m pip install --quiet --no-deps $(THE_WELL) $(AZULA)
	touch $@

app: $(STAMP)
	$(BIN)/panel serve app --port $(PORT) --address 127.0.0.1 --allow-websocket-origin=localhost:$(PORT) --allow-websocket-origin=127.0.0.1:$(PORT)

# The browser tests use Debian's chromium (never a browser downloaded by playwright).
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: lint $(CHROMIUM)
	$(BIN)/python -m pytest

# Lint rules, formatting and the import layers (contracts in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check engine app tests tools
	$(BIN)/ruff format --check engine app tests tools
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
