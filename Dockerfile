# The connector image, on Airbyte's Python connector base image (Python 3.11, user `airbyte`).
# The base image must stay equal to metadata.yaml's connectorBuildOptions.baseImage (unit_tests/test_packaging.py).
FROM docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

WORKDIR /airbyte/integration_code

COPY pyproject.toml README.md main.py ./
COPY source_northpass_lms ./source_northpass_lms
RUN pip install --no-cache-dir . && rm -rf build

ENV AIRBYTE_ENTRYPOINT="python /airbyte/integration_code/main.py"
ENTRYPOINT ["python", "/airbyte/integration_code/main.py"]

USER airbyte
