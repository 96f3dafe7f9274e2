FROM scratch
COPY build.log /var/log/
COPY . /src
