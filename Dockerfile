# The connector image as Airbyte's own build makes it (`airbyte-cdk image build`, its template for Python connectors
# with metadata.yaml's connectorBuildOptions.baseImage): the package installed into the base image's Python by a
# builder stage, then the base image with that /usr/local, `/entrypoint.sh` running the console script, user
# `airbyte`. unit_tests/test_packaging.py compares its final stage with the template; integration_tests/test_image.py
# builds it, compares the versions installed in it with poetry.lock and syncs through it. BASE_IMAGE is an argument,
# as in the template, so a build can name a local stand-in.
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

FROM ${BASE_IMAGE} AS builder
WORKDIR /airbyte/integration_code
# Unlike the template's `pip install .`, which resolves pyproject.toml's ranges afresh on every build: every dependency
# at poetry.lock's version, checked against the lock's hashes, then the package itself without dependencies. An image
# built next month holds what CI tested.
COPY poetry.lock scripts/requirements_from_lock.py ./
RUN python requirements_from_lock.py poetry.lock > requirements.lock \
    && pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY source_northpass_lms ./source_northpass_lms
RUN pip install --no-cache-dir --no-deps .

FROM ${BASE_IMAGE}
# The template writes the script with a heredoc; printf writes the same bytes on builders without heredocs
# (docker's classic builder, Debian's buildah).
RUN printf '#!/usr/bin/env bash\nset -e\n\nsource-northpass-lms "$@"\n' > /entrypoint.sh && chmod 755 /entrypoint.sh
WORKDIR /airbyte/integration_code
COPY --from=builder /usr/local /usr/local
USER airbyte
ENV AIRBYTE_ENTRYPOINT="/entrypoint.sh"
ENTRYPOINT ["/entrypoint.sh"]
