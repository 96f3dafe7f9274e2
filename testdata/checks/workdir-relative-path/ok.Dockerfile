FROM scratch AS base
WORKDIR /srv

FROM base
WORKDIR app
