# A stand-in for redis:7.4-bookworm where it cannot be pulled: Debian's redis-server 7.0 and
# redis-cli, run as the redis user; the compose files give the command and its config file.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
