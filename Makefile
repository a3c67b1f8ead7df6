# Two commands matter: `make demo` and `make test`. Both create .venv from requirements.txt on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SITE := $(VENV)/lib/python3.11/site-packages
PYTEST := $(PY) -m pytest
LINTED := common consent_and_watermark tools solutions tests benchmarks phase1_face_swap \
          phase2_face_reenactment phase3_first_order_motion phase4_audio_driven

.PHONY: demo test test-solutions test-stubs templates templates-check grade lint bench clean-outputs

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@echo "$(CURDIR)" > $(SITE)/deepfake_creation.pth
	@touch $(STAMP)

## demo: generate synthetic people and run every phase's quick preset; report in outputs/index.html
demo: $(STAMP)
	$(PY) -m tools.demo --output outputs

## test: template freshness, the reference solutions, and the stub check of the student templates
test: $(STAMP) templates-check test-solutions test-stubs

test-solutions: $(STAMP)
	$(PYTEST) --impl=solutions -q

# Exit status 5 means "no TODO-tagged test collected" (a checkout without phases): nothing to check.
test-stubs: $(STAMP)
	$(PYTEST) --impl=templates --expect-stubs -q -m "todo and not slow" -p no:cacheprovider || [ $$? -eq 5 ]

templates: $(STAMP)
	$(PY) -m tools.make_templates

templates-check: $(STAMP)
	$(PY) -m tools.make_templates --check

## grade: run the tests against your templates and print the progress table per TODO (one line per
## failing test; the details of one TODO: .venv/bin/python -m pytest --impl=templates --todo ID)
grade: $(STAMP)
	-$(PYTEST) --impl=templates -q -m "todo and not slow" --tb=no

lint: $(STAMP)
	$(PY) -m ruff check $(wildcard $(LINTED))

## bench: every benchmark script (each prints its measured figures; several take minutes)
bench: $(STAMP)
	$(VENV)/bin/pip install --quiet --no-deps invisible-watermark==0.2.0
	for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean-outputs:
	rm -rf outputs
