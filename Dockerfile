# registry-edge: build the TypeScript, then ship only the runtime dependencies.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY test ./test
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    REGISTRY_EDGE_CACHE_DIR=/var/lib/registry-edge
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
COPY bin ./bin
COPY config ./config
RUN mkdir -p /var/lib/registry-edge && chown node:node /var/lib/registry-edge
USER node
VOLUME ["/var/lib/registry-edge"]
EXPOSE 5000 5001
# The admin listener binds 127.0.0.1 by default; in a container publish it on all interfaces.
ENV REGISTRY_EDGE_ADMIN_ADDR=0.0.0.0:5001
ENTRYPOINT ["node", "bin/registry-edge.js"]
CMD ["serve", "--config", "config/registry-edge.yaml"]
