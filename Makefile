# Two set-up commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
# `make layers`, `make package` and `make deploy` (docs/deploy.md) use .venv-package instead.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The portal's browser tests (tests/portal) drive Debian's Chromium through Playwright; the
# Python package never downloads a browser (no `playwright install`).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,$(shell command -v sudo 2>/dev/null))

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# `make demo SERVE=1`: the stack, the API and the portal stay up after the demo, until Ctrl-C.
demo: $(STAMP)
	$(BIN)/python -m functions.cli demo $(if $(SERVE),--serve)

lint: $(STAMP)
	$(BIN)/ruff check functions tests bench app.py
	$(BIN)/ruff format --check functions tests bench app.py

test: lint | $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist worksteal

# `make bench ACCOUNTS=200`: a quick invoice cycle bench (default 10,000 accounts, long).
bench: $(STAMP)
	$(BIN)/python bench/rate_bench.py
	$(BIN)/python bench/pricing_models_bench.py
	$(BIN)/python bench/api_bench.py
	$(BIN)/python bench/authz_bench.py
	$(BIN)/python bench/invoice_cycle_bench.py $(if $(ACCOUNTS),--accounts $(ACCOUNTS))
	$(BIN)/python bench/reconcile_bench.py

clean:
	rm -rf $(VENV) $(PACKAGE_VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis

# --- packaging and deployment (docs/deploy.md); never part of `make test` -------------------
# Lambda runs python3.12, and Chalice takes the runtime and the wheels it fetches from the
# interpreter that packages: so packaging has its own Python 3.12 venv, .venv-package.
PACKAGE_PYTHON ?= $(firstword $(foreach p,python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) /usr/local/bin/python3.12 /usr/bin/python3.12,$(shell $(p) -c 'import sys; print("$(p)") if sys.version_info[:2] == (3, 12) else None' 2>/dev/null)))
PACKAGE_VENV := .venv-package
PACKAGE_BIN := $(PACKAGE_VENV)/bin
PACKAGE_STAMP := $(PACKAGE_VENV)/.installed
PACKAGE_DIR := build/package
# build/layers/arrow.zip (every function) and documents.zip (the PDF renderers only)
LAYER_ZIPS := build/layers/arrow.zip build/layers/documents.zip
MERGE_TEMPLATE := build/merge.json
# Deep-merged in this order into the one merge template Chalice takes (later files refine).
MERGE_SOURCES := infra/template.yaml infra/glue.yaml infra/package.yaml infra/portal.yaml
STACK_NAME ?= tollgate
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
ARTIFACT_BUCKET ?=
PARAMETERS ?=
AWS ?= $(or $(shell command -v aws 2>/dev/null),$(PACKAGE_BIN)/aws)

.PHONY: layers package deploy

$(PACKAGE_STAMP):
	@test -n "$(PACKAGE_PYTHON)" || { echo "make package needs Python 3.12 (the Lambda runtime): make package PACKAGE_PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PACKAGE_PYTHON) -c 'import sys; sys.exit("PACKAGE_PYTHON must be Python 3.12") if sys.version_info[:2] != (3, 12) else None'
	test -x $(PACKAGE_BIN)/python || $(PACKAGE_PYTHON) -m venv $(PACKAGE_VENV)
	$(PACKAGE_BIN)/python -m pip install --quiet --disable-pip-version-check "chalice>=1.34,<2" "cfn-lint>=1"
	touch $@

layers: $(LAYER_ZIPS)

build/layers/%.zip: layers/build.sh | $(PACKAGE_STAMP)
	LAYERS_OUT=$(@D) layers/build.sh $(PACKAGE_BIN)/python $*

$(MERGE_TEMPLATE): $(MERGE_SOURCES) | $(PACKAGE_STAMP)
	@mkdir -p $(@D)
	$(PACKAGE_BIN)/python -c "$$MERGE_TEMPLATES" $@ $(MERGE_SOURCES)

# Chalice packages app.py, chalicelib/ and vendor/ only: functions/ goes in as vendor/functions,
# a copy without __pycache__ (the dev venv's 3.11 bytecode is dead weight on python3.12).
define VENDOR_FUNCTIONS
import shutil
shutil.copytree("functions", "vendor/functions", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
endef
export VENDOR_FUNCTIONS

# build/package/: sam.json (the one template; JSON, as CloudFormation rejects YAML aliases), deployment.zip (app.py, functions/ through the
# vendor/functions link, requirements.txt's packages), arrow-layer.zip and documents-layer.zip.
package: $(PACKAGE_STAMP) $(LAYER_ZIPS) $(MERGE_TEMPLATE)
	rm -rf vendor/functions $(PACKAGE_DIR)
	$(PACKAGE_BIN)/python -c "$$VENDOR_FUNCTIONS"
	AWS_DEFAULT_REGION=$(REGION) $(PACKAGE_BIN)/chalice package --stage dev \
		--pkg-format cloudformation --merge-template $(MERGE_TEMPLATE) $(PACKAGE_DIR)
	$(foreach zip,$(LAYER_ZIPS),cp $(zip) $(PACKAGE_DIR)/$(basename $(notdir $(zip)))-layer.zip;)
	$(PACKAGE_BIN)/cfn-lint $(PACKAGE_DIR)/sam.json
	$(PACKAGE_BIN)/python -c "$$CHECK_PACKAGE" $(PACKAGE_DIR)
	$(PACKAGE_BIN)/python bench/cold_start.py --packaged $(PACKAGE_DIR) --runs 5 --check

$(PACKAGE_BIN)/aws: | $(PACKAGE_STAMP)
	$(PACKAGE_BIN)/python -m pip install --quiet --disable-pip-version-check awscli

# Uploads the zips to ARTIFACT_BUCKET and creates or updates the stack STACK_NAME.
deploy: package $(if $(filter $(PACKAGE_BIN)/aws,$(AWS)),$(PACKAGE_BIN)/aws)
	@test -n "$(ARTIFACT_BUCKET)" || { echo "make deploy needs ARTIFACT_BUCKET=<an S3 bucket of yours in $(REGION)> (docs/deploy.md)" >&2; exit 1; }
	$(AWS) cloudformation package --region $(REGION) --template-file $(PACKAGE_DIR)/sam.json \
		--s3-bucket $(ARTIFACT_BUCKET) --s3-prefix $(STACK_NAME) \
		--output-template-file $(PACKAGE_DIR)/packaged.yaml
	$(AWS) cloudformation deploy --region $(REGION) --stack-name $(STACK_NAME) \
		--template-file $(PACKAGE_DIR)/packaged.yaml \
		--s3-bucket $(ARTIFACT_BUCKET) --s3-prefix $(STACK_NAME) \
		--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
		$(if $(strip $(PARAMETERS)),--parameter-overrides $(PARAMETERS))
	$(AWS) s3 sync portal/ "s3://$$($(AWS) cloudformation describe-stacks --region $(REGION) \
		--stack-name $(STACK_NAME) --output text \
		--query "Stacks[0].Outputs[?OutputKey=='PortalBucketName'].OutputValue")/" --delete

# Deep-merge CloudFormation templates the way `chalice package --merge-template` does; no two
# files may declare the same resource, output or condition, nor one parameter differently.
define MERGE_TEMPLATES
import json
import sys

import yaml
from chalice.package import TemplateDeepMerger

target, *sources = sys.argv[1:]
merged, owner = {}, {}
for path in sources:
    with open(path) as f:
        template = yaml.safe_load(f)
    for section in ("Parameters", "Conditions", "Resources", "Outputs"):
        for name, body in (template.get(section) or {}).items():
            key = (section, name)
            if key in owner:
                first, seen = owner[key]
                same = section == "Parameters" and all(
                    seen.get(k) == body.get(k) for k in ("Type", "Default")
                )
                if not same:
                    sys.exit(f"{path}: {section}/{name} is already declared by {first}")
            owner[key] = (path, body)
    merged = TemplateDeepMerger().merge(template, merged)
# A state machine names its definition's file (one ASL file, also run by the local stack):
# its JSON goes in as Definition, so the template is whole and cfn-lint checks the states.
for name, resource in merged["Resources"].items():
    definition_file = (resource.get("Metadata") or {}).get("Tollgate::DefinitionFile")
    if definition_file:
        with open(definition_file) as f:
            resource["Properties"]["Definition"] = json.load(f)
with open(target, "w") as f:
    json.dump(merged, f, indent=2)
print(f"{target}: {len(merged['Resources'])} resources from {', '.join(sources)}")
endef
export MERGE_TEMPLATES

# What `make package` must have produced; prints the sizes against Lambda's 250 MB limit.
define CHECK_PACKAGE
import json
import sys
import zipfile
from pathlib import Path

LIMIT = 262_144_000  # Lambda: function + all its layers, unzipped (250 MiB)
RENDERING = {"InvoiceRender", "InvoiceSend"}  # the PDF: reportlab, in the documents layer
out = Path(sys.argv[1])
template = json.loads((out / "sam.json").read_text())
functions = {
    name: r["Properties"]
    for name, r in template["Resources"].items()
    if r["Type"] == "AWS::Serverless::Function"
}
assert set(functions) >= {"HandleCdrDrops", "HandleNormalizedFiles", *RENDERING}, sorted(functions)
layer_zips = {
    name: out / r["Properties"]["ContentUri"]
    for name, r in template["Resources"].items()
    if r["Type"] == "AWS::Serverless::LayerVersion"
}
assert set(layer_zips) == {"ArrowLayer", "DocumentsLayer"}, sorted(layer_zips)
for name, props in functions.items():
    assert props["Runtime"] == "python3.12", (name, props["Runtime"])
    wanted = ["ArrowLayer", "DocumentsLayer"] if name in RENDERING else ["ArrowLayer"]
    assert props["Layers"] == [{"Ref": layer} for layer in wanted], (name, props["Layers"])
    for event in props.get("Events", {}).values():
        if event["Type"] == "SQS":
            assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
assert "Definition" in template["Resources"]["InvoiceCycle"]["Properties"], "ASL not inlined"


def unzipped(path):
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    return sum(i.file_size for i in infos), [i.filename for i in infos]


code, names = unzipped(out / "deployment.zip")
layers = {name: unzipped(path) for name, path in layer_zips.items()}
tops = {n.split("/", 1)[0] for n in names}
for needed in ("app.py", "functions/ingest/handler.py", "functions/rate/handler.py"):
    assert needed in names, f"deployment.zip lacks {needed}"
assert not tops & {"pandas", "awswrangler", "pyarrow", "numpy", "reportlab", "PIL"}, sorted(tops)
assert not [n for n in names if ".cpython-" in n and "-312-" not in n], "built for another Python"
assert not [n for n in names if "__pycache__" in n], "bytecode in deployment.zip"
for layer, needed in (
    ("ArrowLayer", ("python/pyarrow/__init__.py", "python/numpy/__init__.py")),
    ("DocumentsLayer", ("python/reportlab/__init__.py", "python/PIL/__init__.py")),
):
    missing = set(needed) - set(layers[layer][1])
    assert not missing, f"{layer} lacks {sorted(missing)}"
print(f"deployment.zip  {(out / 'deployment.zip').stat().st_size / 1e6:7.1f} MB zipped {code / 1e6:7.1f} MB unzipped")
for name, path in layer_zips.items():
    print(f"{path.name:<22} {path.stat().st_size / 1e6:7.1f} MB zipped {layers[name][0] / 1e6:7.1f} MB unzipped")
for name, props in sorted(functions.items()):
    total = code + sum(layers[layer["Ref"]][0] for layer in props["Layers"])
    assert total < LIMIT, f"{name}: {total / 1e6:.1f} MB, over Lambda's 250 MB unzipped limit"
largest = max(
    functions, key=lambda n: sum(layers[layer["Ref"]][0] for layer in functions[n]["Layers"])
)
total = code + sum(layers[layer["Ref"]][0] for layer in functions[largest]["Layers"])
print(f"largest function + layers ({largest}): {total / 1e6:.1f} MB unzipped of Lambda's {LIMIT / 1e6:.1f} MB")
endef
export CHECK_PACKAGE
