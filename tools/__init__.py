"""The project's tools, run from the repository root: `python -m tools.demo` (scripts/demo.sh), `python -m
tools.benchmark` (scripts/benchmark.sh), and the end-to-end runs in venvs of their own, `tools/airbyte_qa.py`
(scripts/airbyte-qa.sh) and `tools/pyairbyte_e2e.py` (scripts/pyairbyte.sh); with the modules they and the tests
share: `harness` (a sandbox process and the connector's CLI), `image` (the connector image, built and run) and
`lock` (what poetry.lock installs). None of it is in the connector's wheel or image.
"""
