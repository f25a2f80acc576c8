# Stand-in for docker.io/library/nginx when Docker Hub can't be reached (test/docker/smoke.sh builds it from the
# offline Debian base image). Same contract as the official image for our use: nginx in the foreground, config at
# /etc/nginx/nginx.conf, logs to stdout/stderr.
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
