# Archway: `make run` starts the archive, `make test` runs the whole suite.
# Both create .venv and install what they need, so a fresh checkout needs only Python 3.11+.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Worklist event reports reach WebSocket clients through the channel layer. The in-memory
# layer (no ARCHWAY_CHANNEL_LAYER_URL) exists only inside one process, so then one worker
# serves everything; with a Redis channel layer every core gets a worker.
ifeq ($(ARCHWAY_CHANNEL_LAYER_URL),)
WORKERS ?= 1
else
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
endif
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
PYTEST_WORKERS ?= 2
STAMP := $(VENV)/.installed

.PHONY: run test test-embedded test-real install lint format bench worker clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,gpl-codecs]"
	@touch $@

install: $(STAMP)

## Serve Archway on http://$(HOST):$(PORT) with the embedded defaults (SQLite, var/ blobs, in-process tasks).
run: $(STAMP)
	@mkdir -p var
	@test -f var/secret_key || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_storage
	$(BIN)/python manage.py bootstrap
	$(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) \
		--no-server-header --timeout-graceful-shutdown 30

## The whole suite: the embedded tier, then the real-services tier (PostgreSQL + SeaweedFS S3).
test: $(STAMP)
	$(MAKE) --no-print-directory test-embedded
	$(MAKE) --no-print-directory test-real

test-embedded: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not real_services" -p no:cacheprovider

test-real: $(STAMP)
	ARCHWAY_TEST_TIER=real DATABASE_URL=$(TEST_DATABASE_URL) \
		$(BIN)/pytest -n $(PYTEST_WORKERS) -m "real_services or both_tiers" -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

## Benchmarks (figures, never pass/fail): see bench/README.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run

## A Celery worker on every queue (needs CELERY_BROKER_URL, e.g. redis://127.0.0.1:6379/0).
## QUEUES=thumbnails runs a worker for one queue; CONCURRENCY sets its processes.
QUEUES ?= thumbnails,transcode,maintenance
CONCURRENCY ?= $(WORKERS)
worker: $(STAMP)
	@test -n "$$CELERY_BROKER_URL" || { echo "set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0)"; exit 2; }
	$(BIN)/celery -A config worker --loglevel INFO --queues $(QUEUES) --concurrency $(CONCURRENCY) \
		--hostname archway-%h-$$$$ --without-gossip --without-mingle

clean:
	rm -rf $(VENV) var/static

## The OHIF Viewer at /viewer/: its prebuilt bundle from the npm registry into var/ohif (needs npm).
.PHONY: ohif
OHIF_VERSION ?= 3.12.10
OHIF_DIR ?= $(or $(ARCHWAY_VAR_DIR),var)/ohif
ohif:
	@command -v npm >/dev/null || { echo "npm is needed for the OHIF Viewer (apt-get install npm)"; exit 1; }
	rm -rf $(OHIF_DIR).download $(OHIF_DIR).new && mkdir -p $(OHIF_DIR).download
	cd $(OHIF_DIR).download && npm pack --silent @ohif/app@$(OHIF_VERSION) >/dev/null
	tar -xzf $(OHIF_DIR).download/ohif-app-*.tgz -C $(OHIF_DIR).download
	mv $(OHIF_DIR).download/package/dist $(OHIF_DIR).new
	# Not used by Archway's viewer (AI models, microscopy): 200 MB → 50 MB.
	rm -rf $(OHIF_DIR).new/ort $(OHIF_DIR).new/dicom-microscopy-viewer $(OHIF_DIR).download
	# Served under /viewer/: webpack's public path (chunks, workers, wasm) is built as "/".
	sed -i 's|__webpack_require__.p = "/";|__webpack_require__.p = "/viewer/";|' $(OHIF_DIR).new/*.js
	sed -i 's|url(/\([^/]\)|url(/viewer/\1|g' $(OHIF_DIR).new/*.css
	rm -rf $(OHIF_DIR) && mv $(OHIF_DIR).new $(OHIF_DIR)
	@echo "OHIF Viewer $(OHIF_VERSION) installed in $(OHIF_DIR); open a study in the admin and click 'Open in viewer'."
