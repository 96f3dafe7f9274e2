# trowel's own images, built by trowel (scripts/image-context.sh assembles the context):
#
#   trowel build --context target/image-context --dockerfile Dockerfile --target trowel …  the minimal image
#   trowel build --context target/image-context --dockerfile Dockerfile --target debug …   with a busybox shell
#
# Everything lives under /trowel, which container isolation never snapshots or overwrites:
# /trowel/trowel (the binary; its loader and libraries in /trowel/lib), CA certificates in
# /trowel/ssl, registry credentials in /trowel/.docker/config.json, the work directory, and the
# git that ADD of a git repository runs in container isolation (/trowel/git, with its ssh, shell
# and libraries; left out by `scripts/image-context.sh --no-git`). /kaniko/ssl/certs is where
# jobs written for kaniko put their CAs (its certificate bundle a link to trowel's).
FROM scratch AS trowel
COPY trowel/ /trowel/
COPY kaniko/ /kaniko/
ENV PATH=/usr/local/bin:/trowel \
    DOCKER_CONFIG=/trowel/.docker/ \
    SSL_CERT_FILE=/trowel/ssl/certs/ca-certificates.crt \
    SSL_CERT_DIR=/kaniko/ssl/certs \
    TROWEL_DIR=/trowel
WORKDIR /workspace
ENTRYPOINT ["/trowel/trowel"]

FROM trowel AS debug
COPY busybox/ /trowel/busybox/
ENV PATH=/usr/local/bin:/trowel:/trowel/busybox
