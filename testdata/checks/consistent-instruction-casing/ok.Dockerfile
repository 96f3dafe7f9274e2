from scratch as base
copy app.conf /etc/app.conf
label org.opencontainers.image.title=app
