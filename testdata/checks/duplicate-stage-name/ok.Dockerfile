FROM scratch AS build-a
FROM scratch AS build-b
