FROM --platform=$BUILDPLATFORM scratch
COPY a /a
