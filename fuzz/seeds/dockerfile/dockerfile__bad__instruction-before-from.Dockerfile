ARG V=1
ENV A=b
FROM busybox
