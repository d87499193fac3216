# The two commands of the README:
#   make demo   — install everything into .venv and run a real search on a real tree
#   make test   — install, start the services the tests need (dockerd), run the whole suite
# Everything is idempotent: a second run reuses the venv, the Docker base image and the worker image.

PY        ?= python3
VENV      ?= .venv
VPY       := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
STDLIB    := $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
# A copy outside any git checkout: the stdlib may itself sit inside one (pyenv is a git
# clone), and ragex would rightly take that whole checkout as the project.
DEMO_TREE ?= $(or $(TMPDIR),/tmp)/ragex-demo/email
QUERY     ?= parse an email address into its display name and address

.PHONY: install demo test test-fast bench image clean

MODEL     := ragexd/_model/manifest.json

install: $(STAMP) $(MODEL)

$(STAMP): pyproject.toml packaging/constraints.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	# torch first and pinned: a CPU wheel; unpinned, pip would pick a CUDA build.
	$(VPY) -m pip install -q torch==2.13.0 -c packaging/constraints.txt
	# compat mode: a plain .pth path entry; the default import-hook finder costs ~30 ms per ragexctl run
	# [export]: torch + sentence-transformers, only to export the model and as the tests' reference.
	# [openvino]: the optional runtime, installed here so its tests run (they skip without it).
	$(VPY) -m pip install -q -c packaging/constraints.txt --config-settings editable_mode=compat -e '.[all,dev,export,openvino]'
	touch $(STAMP)

# The ONNX graph the workers run, exported once from the packaged weights into package
# data (git-ignored): an editable install finds it whatever HOME or data dir a test uses.
$(MODEL): $(STAMP) ragexd/engine/onnx_export.py ragexd/modelfiles.py
	$(VPY) -m ragexd.engine.onnx_export --out ragexd/_model
	touch $(MODEL)

demo: install
	test -d $(DEMO_TREE) || { mkdir -p $(dir $(DEMO_TREE)) && cp -r $(STDLIB)/email $(DEMO_TREE); }
	$(VENV)/bin/ragexctl index $(DEMO_TREE)
	$(VENV)/bin/ragexctl search --project $(DEMO_TREE) "$(QUERY)"
	$(VENV)/bin/ragexctl status

test: install
	bash packaging/ci-setup.sh
	$(VPY) -m pytest -ra --durations=15

test-fast: install
	$(VPY) -m pytest -ra -m "not docker and not soak and not slow"

bench: install
	$(VPY) bench/run_all.py

image: install
	bash packaging/build-image.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
