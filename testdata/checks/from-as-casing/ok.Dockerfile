from scratch as build
copy a /a

from scratch as final
copy --from=build /a /a
