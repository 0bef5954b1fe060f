# registry-edge: build src/ only (tsconfig.build.json: no tests in the image), then ship
# the compiled edge with its runtime dependencies.
#
#   docker build -t registry-edge:0.1.0 .
#   docker run --ulimit nofile=65536:65536 -p 5000:5000 -v edge-cache:/var/lib/registry-edge registry-edge:0.1.0
#
# Descriptors: Node raises its soft RLIMIT_NOFILE to the hard limit at start, so the hard
# limit the runtime gives is what counts. http.max_connections (default 4096) is kept
# below it, with a warn line at start when it does not fit; where the runtime's default
# hard limit is low (1024 on some), pass --ulimit nofile=65536:65536 (compose:
# `ulimits: {nofile: 65536}`). SIGTERM drains for http.shutdown_timeout (8 s) and exits 0,
# inside `docker stop`'s 10 s.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# --ignore-scripts: the prepare script compiles the tests too; the image is built below.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY src ./src
RUN npm run build:prod && npm prune --omit=dev

FROM node:22-bookworm-slim
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="registry-edge" \
      org.opencontainers.image.description="Verified pull-through cache and proxy in front of a central OCI/Docker registry" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/node:22-bookworm-slim"
WORKDIR /app
# The admin listener binds 127.0.0.1 by default; in a container it is published on all
# interfaces (keep its port off the public network: the Kubernetes Service does).
ENV NODE_ENV=production \
    REGISTRY_EDGE_CACHE_DIR=/var/lib/registry-edge \
    REGISTRY_EDGE_ADMIN_ADDR=0.0.0.0:5001
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
COPY bin ./bin
COPY config ./config
# uid 1000 is the base image's `node` user; numeric, so Kubernetes' runAsNonRoot can check it.
RUN mkdir -p /var/lib/registry-edge && chown 1000:1000 /var/lib/registry-edge
USER 1000:1000
VOLUME ["/var/lib/registry-edge"]
EXPOSE 5000 5001
# The image has no curl: Node itself asks the admin listener's /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:5001/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/registry-edge.js"]
CMD ["serve", "--config", "config/registry-edge.yaml"]
