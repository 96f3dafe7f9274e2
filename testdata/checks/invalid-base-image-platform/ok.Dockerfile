ARG REGISTRY=localhost:5000
FROM ${REGISTRY}/busybox:multi
