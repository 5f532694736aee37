# Two entry points for users: `make demo` (the main job on the bundled default) and `make test`.
# Both create .venv on a fresh machine and install the project with versions pinned in constraints.txt.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PIP     := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	# torch first and pinned: an unpinned resolve would pull the multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/qilin demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

# The web page's end-to-end test drives Debian's chromium through playwright (playwright's own browser
# download needs the internet); a CJK font lets the screenshot show the Chinese text.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test: /usr/bin/chromium
/usr/bin/chromium:
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-wqy-microhei
