FROM busybox
RUN echo ok
# nothing to run:
RUN
