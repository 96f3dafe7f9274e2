FROM scratch AS base
ENTRYPOINT ["/usr/bin/app", "--serve"]

FROM base
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
CMD serve --port 8080
