FROM node:20-alpine
ENV NODE_ENV production
WORKDIR /usr/src/app

# Install dependencies first so they are cached.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --omit=dev \
 && npm cache clean --force

COPY --chown=node:node . .
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD wget -qO- http://127.0.0.1:3000/healthz || exit 1
STOPSIGNAL SIGTERM
CMD ["node", "server.js"]
