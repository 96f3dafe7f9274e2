FROM busybox AS base
ONBUILD ARG APP_VERSION=dev
ONBUILD COPY . /app/src
ONBUILD RUN echo "building ${APP_VERSION}" \
    && ls /app/src
ONBUILD RUN <<EOF
echo from a heredoc trigger
EOF
MAINTAINER Jane Doe <jane@example.com>
