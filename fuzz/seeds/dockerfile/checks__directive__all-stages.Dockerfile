FROM scratch AS build
COPY $SOURCE /src

FROM scratch AS test
COPY $TESTS /tests

FROM scratch
COPY --from=build /src /src
