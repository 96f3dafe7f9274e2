FROM scratch
EXPOSE 53/udp 80 443/tcp 132/sctp
