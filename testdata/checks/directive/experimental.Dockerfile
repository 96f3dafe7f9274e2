# check=skip=all;experimental=InvalidDefinitionDescription
# a comment above a stage
FROM scratch AS Final
CMD serve
