FROM debian:bookworm-slim

LABEL maintainer="ops@example.com" \
      description="A Debian image with \
a multi-line description"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Legacy ENV form: everything after the key is the value.
ENV LANG C.UTF-8
ENV PATH=/opt/tools/bin:$PATH TOOLS_HOME=/opt/tools

RUN set -eux; \
    apt-get update; \
    # only what we need
    apt-get install -y --no-install-recommends \
        ca-certificates \

        curl \
        # for debugging
        procps \
    ; \
    rm -rf /var/lib/apt/lists/*

VOLUME ["/var/lib/data", "/var/log/app"]
WORKDIR $TOOLS_HOME
ADD --chmod=0644 https://example.com/tool.tar.gz /opt/tools/
ADD --keep-git-dir=true https://github.com/example/repo.git#v1.0 /src/repo
ENTRYPOINT ["/usr/bin/tini", "--"]
