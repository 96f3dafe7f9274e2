FROM scratch AS build-context
COPY a /a
