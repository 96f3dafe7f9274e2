FROM scratch
ENV APP_HOME=/srv/app APP_USER="app user"
LABEL maintainer=someone@example.org
