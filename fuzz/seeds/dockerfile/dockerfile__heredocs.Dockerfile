# syntax=docker/dockerfile:1
FROM python:3.12-slim AS app
ARG GREETING=hello

RUN <<EOF
set -eu
apt-get update
apt-get install -y --no-install-recommends curl
rm -rf /var/lib/apt/lists/*
EOF

COPY <<EOF /etc/app/config.toml
greeting = "${GREETING}"
home = "$HOME"
EOF

COPY <<'RAW' <<-INDENTED /etc/app/
literal ${GREETING}
RAW
	indented ${GREETING}
	INDENTED

RUN python3 <<PY
import sys
print("python", sys.version_info[:2])
PY

RUN cat <<A >/tmp/a && cat <<-"B" >/tmp/b
first $GREETING
A
	second $GREETING
	B

RUN <<SCRIPT
#!/usr/bin/env python3
print("runs as a script")
SCRIPT

CMD ["python3", "-m", "app"]
