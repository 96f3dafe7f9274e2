# check=error=true
FROM scratch
CMD serve
