FROM scratch
LABEL org.opencontainers.image.authors="someone@example.org"
