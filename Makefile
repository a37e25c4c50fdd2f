# Two commands on a fresh machine: `make run` (the node) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/coordinator

.PHONY: prometheus-local check-alerts venv env run demo superuser api-key verify-local compose-check deploy down logs verify-e2e test test-pg test-sqlite lint fmt migrate bench clean model-runner-venv

# `make demo` and `DEMO=1`: the values of .env.demo exported over .env (synthetic feed, short cycles).
DEMO_ENV := set -a && . ./.env.demo && set +a &&
WITH_ENV = $(if $(DEMO),$(DEMO_ENV))
# `make run BIND=0.0.0.0:8080` or `make demo PORT=8001`: the web server's address (default:
# GUNICORN_BIND from .env, else 127.0.0.1:8000).
NODE_BIND = $(or $(BIND),$(if $(PORT),127.0.0.1:$(PORT)))
NODE_ARGS = $(if $(NODE_BIND),--bind $(NODE_BIND))
# Docker Compose v2 plugin (`docker compose`), else the standalone `docker-compose`.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || \
	(command -v docker-compose >/dev/null 2>&1 && echo docker-compose))

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

# The whole node (web server + four workers, supervised) on the feed configured in .env.
# `exec`: the shell becomes run_node, so a signal to make (which passes SIGTERM to its child)
# or to the shell reaches the node, which stops its whole process tree.
run: venv .env
	exec $(BIN)/python manage.py run_node $(NODE_ARGS)

# The same node on a synthetic feed with short cycles and its own SQLite file (demo.sqlite3).
demo: venv .env
	@echo "Demo: synthetic BTC feed, predictions every 5 s (30 s horizon), checkpoints every 5 min."
	@echo "Admin user for the demo database: make superuser DEMO=1   (in another terminal)"
	@echo "Check the pipeline:               make verify-local DEMO=1"
	$(DEMO_ENV) exec $(BIN)/python manage.py run_node $(NODE_ARGS)

# Create an admin user (DEMO=1: in the demo's database). Prompts on a terminal; without one (CI,
# scripts) set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD (+ _EMAIL): no prompts.
superuser: venv .env
	$(WITH_ENV) $(BIN)/python manage.py migrate -v 0
	@if [ -n "$$DJANGO_SUPERUSER_USERNAME" ]; then $(WITH_ENV) $(BIN)/python manage.py createsuperuser --noinput \
	   && echo "Superuser $$DJANGO_SUPERUSER_USERNAME created."; \
	 elif [ -t 0 ]; then $(WITH_ENV) $(BIN)/python manage.py createsuperuser; \
	 else echo "No terminal to prompt on: set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD, e.g."; \
	   echo "  make superuser$(if $(DEMO), DEMO=1) DJANGO_SUPERUSER_USERNAME=admin DJANGO_SUPERUSER_PASSWORD='a long secret'"; \
	   exit 2; fi

# An API key for the report API's writes (DEMO=1: in the demo's database); printed once.
api-key: venv .env
	$(WITH_ENV) $(BIN)/python manage.py migrate -v 0
	$(WITH_ENV) $(BIN)/python manage.py create_api_key --name $(or $(NAME),operator) --scope $(or $(SCOPE),admin)

# verify_e2e against the embedded node (DEMO=1: the demo's database).
verify-local: venv .env
	$(WITH_ENV) $(BIN)/python manage.py verify_e2e --timeout $(or $(TIMEOUT),120) $(VERIFY_ARGS)

# Debian's prometheus (apt-get install prometheus) on loopback, scraping the node started by
# `make run`/`make demo` (WEB=127.0.0.1:8000) with the shipped alert rules; UI on PROM_PORT.
PROM_PORT ?= 9091
WEB ?= 127.0.0.1:8000
prometheus-local:
	@command -v prometheus >/dev/null || { echo "prometheus not found: apt-get install prometheus"; exit 1; }
	mkdir -p .prometheus
	printf 'global: {scrape_interval: 5s, evaluation_interval: 5s}\nrule_files: [%s]\nscrape_configs:\n  - job_name: coordinator\n    static_configs: [{targets: ["%s"]}]\n' \
		"$(CURDIR)/deploy/prometheus/alerts.yml" "$(WEB)" > .prometheus/prometheus.yml
	prometheus --config.file=.prometheus/prometheus.yml --storage.tsdb.path=.prometheus/data \
		--web.listen-address=127.0.0.1:$(PROM_PORT)

# The alert rules and their unit tests (promtool ships with Debian's prometheus).
check-alerts:
	cd deploy/prometheus && promtool check rules alerts.yml && promtool test rules alerts.test.yml

# --- Production: docker compose (Postgres + web + one container per worker) --------------
compose-check:
	@test -n "$(COMPOSE)" || { echo "Docker Compose not found: install the compose plugin (docker compose) or docker-compose"; exit 1; }

deploy: compose-check .env
	$(COMPOSE) up -d --build
	@echo "Started. Pages and API on http://127.0.0.1:$${WEB_PORT:-8000}/ ; follow with: make logs ; check with: make verify-e2e"

down: compose-check
	$(COMPOSE) down

logs: compose-check
	$(COMPOSE) logs -f --tail=200

verify-e2e: compose-check
	$(COMPOSE) exec -T web python manage.py verify_e2e --timeout $(or $(TIMEOUT),300) $(VERIFY_ARGS)

# The real model node (`crunch-model-runner`, command `model-runner`) in a virtualenv of its own:
# its protobuf<6 pin cannot share one with model-runner-client (MODEL_RUNNER_NOTES.md §3.3).
# About 0.5 GB, built once: the stamp is keyed on the version, so a second run does nothing and
# a version bump rebuilds. tests/e2e/test_real_model_node.py runs the remote gateway against it.
MODEL_RUNNER_VERSION ?= 0.4.2
MODEL_RUNNER_VENV ?= .model-runner-venv
MODEL_RUNNER_STAMP := $(MODEL_RUNNER_VENV)/.installed-crunch-model-runner-$(MODEL_RUNNER_VERSION)

$(MODEL_RUNNER_STAMP):
	rm -rf $(MODEL_RUNNER_VENV)
	$(PYTHON) -m venv $(MODEL_RUNNER_VENV)
	$(MODEL_RUNNER_VENV)/bin/pip install -q --upgrade pip
	$(MODEL_RUNNER_VENV)/bin/pip install -q crunch-model-runner==$(MODEL_RUNNER_VERSION)
	$(MODEL_RUNNER_VENV)/bin/model-runner --help >/dev/null
	touch $@

model-runner-venv: $(MODEL_RUNNER_STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if [ -f ../shared/tools/check_layers.py ]; then $(BIN)/python ../shared/tools/check_layers.py .; \
	 else echo "check_layers.py not found next to this checkout: import-flow check skipped"; fi
	SECRET_KEY=ci $(BIN)/python manage.py makemigrations --check --dry-run
	SECRET_KEY=ci $(BIN)/python manage.py check
	SECRET_KEY=ci $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	@if docker compose version >/dev/null 2>&1; then docker compose config -q && echo "docker compose config: ok"; \
	 else echo "docker compose plugin not installed: docker-compose.yml not validated"; fi

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-pg: venv
	DATABASE_URL=$(PG_URL) $(BIN)/pytest -q $(PYTEST_ARGS)

test-sqlite: venv
	env -u DATABASE_URL $(BIN)/pytest -q $(PYTEST_ARGS)

# The two suites run side by side (one process each, own databases): on 2 cores the whole run
# takes about as long as the PostgreSQL pass alone. Each target's output is printed when it ends.
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-pg test-sqlite

clean:
	rm -rf $(VENV) $(MODEL_RUNNER_VENV) staticfiles .pytest_cache .ruff_cache .test-db.sqlite3* demo.sqlite3*
