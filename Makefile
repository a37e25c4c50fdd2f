# Two commands on a fresh machine: `make run` (the node) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/coordinator

.PHONY: venv env run demo test test-pg test-sqlite lint fmt migrate bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

.env:
	cp .env.example .env
	sed -i "s|^SECRET_KEY=.*|SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')|" .env

env: .env

migrate: venv .env
	$(BIN)/python manage.py migrate

run: venv .env migrate
	$(BIN)/python manage.py runserver 127.0.0.1:8000

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if [ -f ../shared/tools/check_layers.py ]; then $(BIN)/python ../shared/tools/check_layers.py .; \
	 else echo "check_layers.py not found next to this checkout: import-flow check skipped"; fi
	SECRET_KEY=ci $(BIN)/python manage.py makemigrations --check --dry-run
	SECRET_KEY=ci $(BIN)/python manage.py check
	SECRET_KEY=ci $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-pg: venv
	DATABASE_URL=$(PG_URL) $(BIN)/pytest -q $(PYTEST_ARGS)

test-sqlite: venv
	env -u DATABASE_URL $(BIN)/pytest -q $(PYTEST_ARGS)

test: lint test-pg test-sqlite

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .test-db.sqlite3*
