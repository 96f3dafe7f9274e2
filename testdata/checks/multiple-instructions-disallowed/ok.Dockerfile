FROM scratch AS base
CMD ["serve"]
ENTRYPOINT ["/app"]

FROM base
CMD ["serve", "--verbose"]
ENTRYPOINT ["/app", "--debug"]
