# A stand-in for caddy:2.8-alpine where it cannot be pulled: Debian's Caddy 2.6 (and the
# wget its health check runs), with the official image's paths (/etc/caddy/Caddyfile, /data).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy wget \
 && rm -rf /var/lib/apt/lists/* \
 && install -d /data /config
ENV XDG_CONFIG_HOME=/config \
    XDG_DATA_HOME=/data
EXPOSE 80 443 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
