# Two commands: `make run` (the whole stack, in the foreground) and `make test`.
# Django 6.0 needs Python 3.12 or newer: the first of these on PATH that runs and is new enough (with
# pyenv, .python-version selects 3.12), or `make PYTHON=/path/to/python3.12 ...`.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
# The web process listens on 127.0.0.1:$(PORT) (WEB_HOST=0.0.0.0 for every interface): `make run PORT=8001`
# runs a second checkout beside the first.
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-clients docs bench bench-peers env flower

run: $(VENV)/installed .env
	# The operations pages read queue figures from RabbitMQ's management API (a local broker; a remote
	# one needs the plugin enabled there: RABBITMQ_MANAGEMENT_URL).
	-command -v rabbitmq-plugins >/dev/null && rabbitmq-plugins --quiet enable rabbitmq_management
	$(BIN)/python manage.py db_create
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	# The Procfile's commands come from the virtualenv. `--env /dev/null`: honcho would otherwise load
	# .env over the exported environment; the settings read .env themselves, under it.
	# `--port`: honcho gives the web process $$PORT (the others the next hundreds, unused). Workers and
	# beat run under bin/respawn: one that crashes starts again, and the rest stay up.
	PATH="$(CURDIR)/$(BIN):$$PATH" WEB_PORT=$(PORT) $(BIN)/honcho start --env /dev/null --port $(PORT)

test: $(VENV)/installed .env
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py test --noinput

# Third-party apps that declare their work with Django's tasks API (Wagtail), on this engine's backend
# (tests/clients). Their packages are not the project's: installed only here, the project's pins kept.
test-clients: $(VENV)/clients-installed .env
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py test --noinput tests.clients --settings tests.settings_wagtail

$(VENV)/clients-installed: tests/clients/requirements.txt $(VENV)/installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt -c requirements.txt
	touch $@

# The documentation site (docs/, mkdocs.yml) into site/; a warning fails the build. Its tools are not
# the project's: installed only here, from docs/requirements.txt.
docs: $(VENV)/docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

$(VENV)/docs-installed: docs/requirements.txt $(VENV)/installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r docs/requirements.txt
	touch $@

# Optional: Flower at http://localhost:5555, beside `make run` (the admin shows queues and workers).
flower: $(VENV)/installed .env
	$(BIN)/celery -A site_config flower --port=5555

bench: $(VENV)/installed .env
	$(BIN)/python manage.py bench_throughput

# This project against its peers, side by side (benchmarks/bench_peers.py); the peers' packages are
# installed only here.
bench-peers: $(VENV)/installed .env benchmarks/.venv-procrastinate/installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt -c requirements.txt
	$(BIN)/python benchmarks/bench_peers.py

# Procrastinate needs psycopg 3, which would change the project's own database driver: a virtualenv of its own.
benchmarks/.venv-procrastinate/installed: benchmarks/requirements-procrastinate.txt
	$(PYTHON) -m venv benchmarks/.venv-procrastinate
	benchmarks/.venv-procrastinate/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

env: .env

# Reinstall whenever requirements.txt changes.
$(VENV)/installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is needed (Django 6.0), and none was found as python3.13, python3.12 or python3. Install one (pyenv install 3.12, or your system's python3.12 package), or run make PYTHON=/path/to/python3.12." >&2; exit 1; }
	# A virtualenv of an older Python (before Django 6) is made again.
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || rm -rf $(VENV)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# A local .env from the example, with a fresh secret key. Never overwrites an existing one.
.env:
	sed "s|^DJANGO_SECRET_KEY=.*|DJANGO_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')|" .env.example > .env
