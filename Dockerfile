# OpenAI-compatible server for Phi-4-mini-instruct ONNX (CPU, onnxruntime-node).
#
#   docker build -t phi4-local-server .
#   docker run -d -p 127.0.0.1:8080:8080 -v "$PWD/models/phi-4-mini-instruct:/models" phi4-local-server
#
# /models is the model folder (model.onnx, model.onnx.data, genai_config.json, tokenizer files). When it is
# empty, the server builds the tiny synthetic model (random weights, ~100 MB, a few seconds) into it on first
# start and serves it with a warning. Nothing is downloaded at run time.
#
# NODE_IMAGE must be a glibc (Debian) Node 20 image: onnxruntime-node's prebuilt binaries don't run on musl/alpine.
ARG NODE_IMAGE=docker.io/library/node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------------------------
# modules: every dependency, installed once (the only step that needs the network)
FROM ${NODE_IMAGE} AS modules
WORKDIR /app
# The compiler builds native/malloc-trim (glibc's malloc_trim, so an unloaded model's memory is given back),
# against the image's own Node headers.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
# .npmrc comes first: it sets onnxruntime-node-install=skip, so `npm ci` doesn't try to download CUDA binaries
# (the CPU binaries ship inside the npm package).
COPY package.json package-lock.json .npmrc ./
COPY native ./native
RUN npm ci --no-audit --no-fund \
 && test -f native/malloc-trim/build/Release/malloc_trim.node

# ---------------------------------------------------------------------------------------------------------------
# build: TypeScript -> dist/
FROM modules AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY routes ./routes
RUN npx tsc -p tsconfig.build.json

# ---------------------------------------------------------------------------------------------------------------
# prod-modules: production dependencies only, without onnxruntime-node's binaries for other systems (~220 MB)
FROM modules AS prod-modules
RUN npm prune --omit=dev --offline --no-audit --no-fund \
 && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 -type d ! -name linux -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------------------------
# runtime
FROM ${NODE_IMAGE}
# glibc malloc with one arena: the engine's worker thread otherwise gets its own, which kept freed
# memory resident (see README, Sizing). A fixed mmap threshold (MALLOC_MMAP_THRESHOLD_) was tried too
# and dropped: it slowed prefill by ~16% for no RSS gain once KV buffers were reused.
# LOG_PRETTY=0: JSON log lines even under `docker run -t` (on a terminal the server would pick readable logs).
ENV MALLOC_ARENA_MAX=1 \
    NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    MODEL_DIR=/models \
    MODEL_NAME=phi-4-mini-instruct \
    LOG_PRETTY=0
WORKDIR /app
# package.json is needed at run time: "type": "module" makes dist/**/*.js ES modules.
COPY package.json ./
COPY --from=prod-modules /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=modules /app/native/malloc-trim/build/Release/malloc_trim.node ./native/malloc-trim/build/Release/
# The web playground's static files (served at /; off with NO_UI=1).
COPY public ./public
# The node user (uid 1000) must be able to write /models so the tiny model can be built into an empty volume.
RUN mkdir -p /models && chown node:node /models
VOLUME ["/models"]
USER node
EXPOSE 8080
# No curl in the slim image: probe with node itself. Generous start period: loading the real model from a slow
# disk (or building the tiny one) takes a while; /ready answers 503 until the model is loaded.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/ready',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/src/main.js"]
