# registry-edge: build the TypeScript, then ship only the runtime dependencies.
#
#   docker run --ulimit nofile=65536:65536 -p 5000:5000 -v edge-cache:/var/lib/registry-edge registry-edge
#
# Descriptors: Node raises its soft RLIMIT_NOFILE to the hard limit at start, so the hard
# limit the runtime gives is what counts. http.max_connections (default 4096) is kept
# below it, with a warn line at start when it does not fit; where the runtime's default
# hard limit is low (1024 on some), pass --ulimit nofile=65536:65536 (compose:
# `ulimits: {nofile: 65536}`). SIGTERM drains for http.shutdown_timeout (8 s) and exits 0,
# inside `docker stop`'s 10 s.
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
