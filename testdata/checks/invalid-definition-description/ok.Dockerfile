# check=experimental=InvalidDefinitionDescription
# TAG is the tag of the base image
ARG TAG=1.35

# builder compiles the program
FROM scratch AS builder
# a comment that describes nothing
#
ARG VERSION=1.0
