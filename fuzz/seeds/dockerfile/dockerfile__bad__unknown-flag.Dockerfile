FROM busybox
RUN --mount=type=cache,target=/c --privileged make
