FROM busybox
COPY \
    app
