# syntax=docker/dockerfile:1
# check=skip=all
FROM scratch AS Final
MAINTAINER someone@example.org
CMD serve
