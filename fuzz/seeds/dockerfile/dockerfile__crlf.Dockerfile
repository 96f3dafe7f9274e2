FROM busybox
RUN echo one \
    two
COPY <<EOF /x
line
EOF
CMD ["sh"]
