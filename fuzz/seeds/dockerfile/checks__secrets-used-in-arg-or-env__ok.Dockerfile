FROM scratch
ARG PUBLIC_KEY
ENV TOKEN_FILE=/run/secrets/token KEYBOARD=us
# check=skip=SecretsUsedInArgOrEnv // a placeholder, replaced at run time
ENV API_KEY=none
