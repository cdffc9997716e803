# The two commands in README.md: `make demo` (the main job) and `make test` (everything CI runs).
# Both set up a fresh Debian machine themselves: system packages, a virtualenv, the project.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# System packages: OCR (tesseract + Chinese pack), legacy .doc (catdoc, antiword),
# libmagic for type sniffing, Chromium + driver for the report's browser test.
APT_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim catdoc antiword \
	libmagic1 chromium chromium-driver
CONTRIB := contrib/instructgen-plugin-template contrib/instructgen-ray contrib/instructgen-litellm

.PHONY: setup system venv demo test lint typecheck pytest docs clean

setup: system venv

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml $(wildcard contrib/*/pyproject.toml)
	$(BIN)/pip install -q -e '.[all,dev]'
	$(BIN)/pip install -q $(foreach d,$(CONTRIB),-e "$(d)[test]")
	touch $@

venv: $(VENV)/.installed

demo: setup
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

LINT_DIRS := $(wildcard core plugins contrib tests benchmarks examples docs/*.py)

lint: venv
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/lint-imports --no-cache

typecheck: venv
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests $(wildcard contrib/*/tests)

docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d build/site

test: setup lint typecheck pytest docs

clean:
	rm -rf $(VENV) build site .mypy_cache .ruff_cache
