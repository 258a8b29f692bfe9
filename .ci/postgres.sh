#!/usr/bin/env bash
# Start a local PostgreSQL server for metaxy-sql tests and print its URL.
#
#   export METAXY_SQL_POSTGRES_URL=$(bash .ci/postgres.sh | tail -1)
#   bash .ci/postgres.sh drop     # drop database $METAXY_PG_DB (what .ci/run does at exit)
#
# For a Debian/Ubuntu machine without Docker or systemd (run as root, or with
# passwordless sudo). Steps, each skipped when already done (second run ~1 s):
#   1. apt-get install postgresql, only if no server binaries are installed;
#   2. pick a cluster (an online one if any, else the newest), create one if none;
#      if it is down: listen on 127.0.0.1 only, port 5432 or the next free one;
#      start it with pg_ctlcluster (works without systemd);
#   3. create role $METAXY_PG_ROLE (password $METAXY_PG_PASSWORD) if it does not exist, and
#      database $METAXY_PG_DB (UTF8, LC_COLLATE C = byte order) if it does not exist.
#      An existing role keeps its password and an existing database its data: nobody else's
#      session is cut off (tests use a fresh schema each);
#   4. check a password login over TCP and print the URL as the LAST line of stdout.
# Everything else goes to stderr.
# Knobs (env): METAXY_PG_ROLE=metaxy METAXY_PG_PASSWORD=metaxy METAXY_PG_DB=metaxy_test
#              METAXY_PG_PORT=5432 (preferred port when a stopped cluster is started)
set -euo pipefail

exec 3>&1 1>&2 # fd 3 = real stdout (only the URL goes there); everything else -> stderr

ROLE=${METAXY_PG_ROLE:-metaxy}
PASSWORD=${METAXY_PG_PASSWORD:-metaxy}
DB=${METAXY_PG_DB:-metaxy_test}
PREFERRED_PORT=${METAXY_PG_PORT:-5432}
MODE=${1:-start}
[[ $MODE == start || $MODE == drop ]] || { echo "usage: $0 [start|drop]" >&2; exit 2; }

log() { echo "[postgres.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Interpolated into SQL and the URL below: keep them to safe characters.
for v in "$ROLE" "$DB"; do
  [[ $v =~ ^[a-z_][a-z0-9_]*$ ]] || die "role/database name must match [a-z_][a-z0-9_]*: '$v'"
done
[[ $PASSWORD =~ ^[A-Za-z0-9_.-]+$ ]] || die "password must match [A-Za-z0-9_.-]+"
[[ $PREFERRED_PORT =~ ^[0-9]+$ ]] || die "METAXY_PG_PORT must be a number"

if [[ $(id -u) -eq 0 ]]; then
  as_root() { "$@"; }
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
elif [[ $(id -un) == postgres ]]; then
  as_root() { die "need root to run: $*"; }
  as_pg() { (cd / && "$@"); }
elif command -v sudo >/dev/null 2>&1; then
  as_root() { sudo -n "$@"; }
  as_pg() { (cd / && sudo -n -u postgres "$@"); }
else
  die "run as root (or as postgres, or with passwordless sudo)"
fi

# The server inherits our open fds: close fd 3 (the caller's stdout pipe), or a caller doing
# $(bash .ci/postgres.sh | tail -1) would wait forever for EOF on it.
pgctl() { as_root pg_ctlcluster "$VER" "$NAME" "$@" </dev/null 3>&-; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# ---------------------------------------------------------------- 1. install
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  log "installing postgresql with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends postgresql </dev/null >/dev/null 3>&- # its init script may start a server: keep fd 3 away from it
  JUST_INSTALLED=1
fi

# ---------------------------------------------------------------- 2. cluster
# pg_lsclusters -h: "ver name port status owner datadir logfile", no header.
pick_cluster() {
  local line
  line=$(pg_lsclusters -h | awk '$4 ~ /^online/' | sort -k1,1nr | head -1)
  [[ -n $line ]] || line=$(pg_lsclusters -h | sort -k1,1nr | head -1)
  echo "$line"
}

# listen_addresses = '127.0.0.1' in a conf.d drop-in (Debian's postgresql.conf has
# include_dir = 'conf.d'; pg_conftool would write 127.0.0.1 unquoted, which postgres rejects).
listen_localhost_only() {
  local confdir=/etc/postgresql/$VER/$NAME
  as_root mkdir -p "$confdir/conf.d"
  echo "listen_addresses = '127.0.0.1'  # written by metaxy-sql .ci/postgres.sh" \
    | as_root tee "$confdir/conf.d/metaxy-sql.conf" >/dev/null
  as_root chown -R postgres:postgres "$confdir/conf.d"
  if ! grep -Eq "^[[:space:]]*include_dir[[:space:]]*=[[:space:]]*'conf.d'" "$confdir/postgresql.conf"; then
    echo "include_dir = 'conf.d'" | as_root tee -a "$confdir/postgresql.conf" >/dev/null
  fi
}

CLUSTER=$(pick_cluster)
if [[ -z $CLUSTER ]]; then
  VER=$(ls /usr/lib/postgresql | sort -n | tail -1)
  log "no cluster found: creating $VER/main"
  as_root pg_createcluster --locale C.UTF-8 "$VER" main </dev/null >/dev/null 3>&-
  CLUSTER=$(pick_cluster)
fi
read -r VER NAME PORT STATUS _ <<<"$CLUSTER"

if [[ $STATUS != online* ]]; then
  if port_open "$PREFERRED_PORT"; then
    # something else (another server) holds the preferred port: take the next free one
    NEWPORT=
    for ((p = PREFERRED_PORT + 1; p < PREFERRED_PORT + 100; p++)); do
      if ! port_open "$p"; then NEWPORT=$p; break; fi
    done
    [[ -n $NEWPORT ]] || die "no free port in $PREFERRED_PORT..$((PREFERRED_PORT + 99))"
    log "port $PREFERRED_PORT is taken; using $NEWPORT"
  else
    NEWPORT=$PREFERRED_PORT
  fi
  if [[ $NEWPORT != "$PORT" ]]; then as_root pg_conftool "$VER" "$NAME" set port "$NEWPORT"; fi
  listen_localhost_only
  PORT=$NEWPORT
  log "starting cluster $VER/$NAME on 127.0.0.1:$PORT"
  pgctl start \
    || die "could not start $VER/$NAME (log: /var/log/postgresql/postgresql-$VER-$NAME.log)"
elif [[ ${JUST_INSTALLED:-0} == 1 ]]; then
  # the package's init script started it (listen_addresses = localhost, i.e. also ::1)
  log "restarting freshly installed cluster $VER/$NAME to listen on 127.0.0.1 only"
  listen_localhost_only
  pgctl restart
  STATUS=restarted
else
  log "cluster $VER/$NAME already running on port $PORT"
fi

# pg_ctlcluster start waits for readiness; poll a little anyway after a fresh start
TRIES=1; [[ $STATUS == online* ]] || TRIES=20
for ((i = 1; i <= TRIES; i++)); do
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "$PORT"; then
  # running, but not on 127.0.0.1 (e.g. listen_addresses = ''): fix it and restart
  log "cluster $VER/$NAME is not reachable on 127.0.0.1:$PORT: setting listen_addresses and restarting"
  listen_localhost_only
  pgctl restart
  for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p "$PORT" >&2 || die "server not accepting connections on 127.0.0.1:$PORT"
fi

# ---------------------------------------------------------------- 3. role + database
psql_admin() { as_pg psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"; }

if [[ $MODE == drop ]]; then
  log "dropping database $DB"
  psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  exit 0
fi

# A role that exists keeps its password (another user of this server may rely on it).
psql_admin <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE WITH LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END \$\$;
SQL

if [[ $(psql_admin -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'") == 1 ]]; then
  log "using existing database $DB"
else
  log "creating database $DB"
  # template0 + explicit encoding/locale: independent of the cluster's defaults.
  # LC_COLLATE C: ORDER BY on text is byte order (as DuckDB/ClickHouse), and fast.
  psql_admin -c "CREATE DATABASE $DB OWNER $ROLE TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.UTF-8'"
  # throwaway data: do not wait for WAL flush on commit (per database, server untouched)
  psql_admin -c "ALTER DATABASE $DB SET synchronous_commit = off"
fi

# ---------------------------------------------------------------- 4. check + print
URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
tcp_login() { PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=5 psql -X -q -Atc 'SELECT 1' "postgresql://$ROLE@127.0.0.1:$PORT/$DB" >/dev/null 2>&1; }
if ! tcp_login; then
  # pg_hba.conf without a password rule for 127.0.0.1: add one for this role/db only
  HBA=$(as_pg psql -X -Atc 'SHOW hba_file' -p "$PORT" -d postgres)
  log "password login failed; adding 'host $DB $ROLE 127.0.0.1/32 scram-sha-256' to $HBA"
  as_root sed -i "1i host $DB $ROLE 127.0.0.1/32 scram-sha-256" "$HBA"
  psql_admin -c 'SELECT pg_reload_conf()' >/dev/null
  sleep 0.5
  tcp_login || die "cannot log in as $ROLE over TCP to 127.0.0.1:$PORT (see $HBA); if role $ROLE already existed with another password, set METAXY_PG_PASSWORD to it or pick another METAXY_PG_ROLE"
fi

log "ready: PostgreSQL $VER ($NAME) at 127.0.0.1:$PORT, database $DB"
echo "$URL" >&3
