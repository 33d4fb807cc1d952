# The shared base of every fedjourney role image: the heavy layers of images/base/Dockerfile
# (fedjourney/base-deps) plus the fedjourney package, installed in the last layer so that
# editing fedjourney's source rebuilds only this small layer.
#
# Built by scripts/build-images with --network none; its context is a copy of pyproject.toml,
# README.md, src/, node/, researcher/ and plans/ (src/fedjourney/{node,researcher,plans} link
# to them); it builds with the setuptools and wheel already in the venv (locked).
ARG DEPS_IMAGE=fedjourney/base-deps:latest

FROM ${DEPS_IMAGE} AS build
LABEL org.fedjourney.stage=build
# Builds as root in this throwaway stage; the final stage runs as the user.
# hadolint ignore=DL3002
USER 0:0
COPY . /tmp/fedjourney/
# --prefix: the package's files alone, laid out like the venv, to be copied into it below.
RUN pip install --no-index --no-build-isolation --no-deps --no-cache-dir \
        --disable-pip-version-check --prefix /tmp/prefix /tmp/fedjourney

FROM ${DEPS_IMAGE}
ARG APP_UID=10001
COPY --from=build /tmp/prefix/ /opt/venv/
# Fails the build if the package does not import or its command is missing.
USER ${APP_UID}:${APP_UID}
RUN python3 -c 'import fedjourney' && command -v fedjourney >/dev/null
