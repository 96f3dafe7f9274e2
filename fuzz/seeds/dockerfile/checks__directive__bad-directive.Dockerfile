# check=error=maybe
FROM scratch
