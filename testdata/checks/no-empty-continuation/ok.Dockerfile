FROM scratch
COPY a \
# a comment line inside a continuation is fine
     b \
     /dst/
