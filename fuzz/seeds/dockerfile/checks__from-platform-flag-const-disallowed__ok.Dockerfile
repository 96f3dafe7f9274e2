FROM --platform=linux/amd64 scratch AS tools-amd64
COPY tool /usr/bin/tool

FROM --platform=$BUILDPLATFORM scratch AS cross
COPY --from=tools-amd64 /usr/bin/tool /tool
