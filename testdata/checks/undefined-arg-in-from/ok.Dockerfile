ARG SUFFIX
FROM scratch${SUFFIX} AS base
FROM --platform=$BUILDPLATFORM scratch
