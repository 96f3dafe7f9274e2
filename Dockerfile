# trowel's own images, built by trowel (scripts/image-context.sh assembles the context):
#
#   trowel build --context target/image-context --dockerfile Dockerfile --target trowel …  the minimal image
#   trowel build --context target/image-context --dockerfile Dockerfile --target debug …   with a busybox shell
#
# Everything lives under /trowel, which container isolation never snapshots or overwrites:
# /trowel/trowel (the binary; its loader and libraries in /trowel/lib), CA certificates in
# /trowel/ssl, registry credentials in /trowel/.docker/config.json, and the work directory.
FROM scratch AS trowel
COPY trowel/ /trowel/
ENV PATH=/usr/local/bin:/trowel \
    DOCKER_CONFIG=/trowel/.docker/ \
    SSL_CERT_FILE=/trowel/ssl/certs/ca-certificates.crt \
    TROWEL_DIR=/trowel
WORKDIR /workspace
ENTRYPOINT ["/trowel/trowel"]

FROM trowel AS debug
COPY busybox/ /trowel/busybox/
ENV PATH=/usr/local/bin:/trowel:/trowel/busybox
