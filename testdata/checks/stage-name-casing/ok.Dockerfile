FROM scratch AS build
COPY a /a
