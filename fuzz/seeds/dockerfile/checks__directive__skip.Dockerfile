# check=skip=JSONArgsRecommended,StageNameCasing
FROM scratch AS Final
MAINTAINER someone@example.org
CMD serve
