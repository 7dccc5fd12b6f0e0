#!/bin/sh
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
data=/var/lib/postgresql/data
mkdir -p "$data" && chown postgres "$data"
printf '%s' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" >/tmp/pw && chown postgres /tmp/pw
runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --pwfile=/tmp/pw --auth=scram-sha-256 >/dev/null
rm /tmp/pw
echo "host all all 0.0.0.0/0 scram-sha-256" >>"$data/pg_hba.conf"
if [ -n "${POSTGRES_DB:-}" ]; then
  runuser -u postgres -- "$bin/postgres" --single -D "$data" postgres <<SQL >/dev/null
CREATE DATABASE "$POSTGRES_DB";
SQL
fi
exec runuser -u postgres -- "$bin/postgres" -D "$data" -c listen_addresses='*'
