# A stand-in for postgres:16-bookworm where it cannot be pulled: Debian's PostgreSQL 15 with
# an entrypoint honouring the official image's POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD
# and POSTGRES_PASSWORD_FILE, PGDATA and its volume path. Built by deploy/images/standins.sh.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# No cluster at install time: the entrypoint makes one in PGDATA on first start.
RUN mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
