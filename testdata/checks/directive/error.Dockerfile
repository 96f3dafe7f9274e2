# check=error=true;skip=MaintainerDeprecated
FROM scratch
MAINTAINER someone@example.org
CMD serve
