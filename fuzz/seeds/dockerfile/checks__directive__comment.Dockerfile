FROM scratch
# check=skip=JSONArgsRecommended // the shell form is wanted here
CMD serve
ENTRYPOINT serve
