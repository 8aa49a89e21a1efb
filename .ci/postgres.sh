#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests and the benchmark: Debian's postgresql package, a
# cluster in a temporary folder owned by an unprivileged user, listening on 127.0.0.1 (a free
# port) and on a unix socket in the same folder, with synchronous_commit on (the default).
#
#   eval "$(.ci/postgres.sh start)"   # exports UWS_TEST_POSTGRES_URL
#   .ci/postgres.sh url               # prints the URL of the running server
#   .ci/postgres.sh stop              # stops it and removes the folder
#
# The folder is ${UWS_PG_DIR:-/tmp/uws-postgres}; start is idempotent (a running server is reused).
set -euo pipefail

DIR="${UWS_PG_DIR:-/tmp/uws-postgres}"
PGUSER_OS="${UWS_PG_OS_USER:-uwspg}"
DB=uws_test
say() { echo "postgres.sh: $*" >&2; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        # runuser keeps root out of the server: initdb and postgres refuse to run as root.
        runuser -u "$PGUSER_OS" -- "$@"
    else
        "$@"
    fi
}

bindir() {
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            say "PostgreSQL is not installed; run as root once (apt-get install postgresql)"
            exit 1
        fi
        say "installing Debian's postgresql package"
        apt-get update -qq >&2
        # The package's own cluster is not used: our cluster lives in $DIR.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    fi
    dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)"
}

url() {
    echo "postgresql://uws@127.0.0.1:$(cat "$DIR/port")/$DB"
}

start() {
    local bin
    bin="$(bindir)"
    if [ "$(id -u)" = 0 ] && ! id "$PGUSER_OS" >/dev/null 2>&1; then
        say "creating the unprivileged user $PGUSER_OS"
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PGUSER_OS"
    fi
    if [ -f "$DIR/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
        say "already running in $DIR"
        echo "export UWS_TEST_POSTGRES_URL=$(url)"
        return
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown "$PGUSER_OS" "$DIR"
    say "initdb in $DIR/data as $(if [ "$(id -u)" = 0 ]; then echo "$PGUSER_OS"; else id -un; fi)"
    as_owner "$bin/initdb" -D "$DIR/data" -U uws --auth=trust -E UTF8 --no-locale >/dev/null
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    echo "$port" >"$DIR/port"
    cat >>"$DIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR'
max_connections = 200
synchronous_commit = on
fsync = on
shared_buffers = 128MB
EOF
    say "starting on 127.0.0.1:$port and a unix socket in $DIR"
    as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null
    as_owner "$bin/createdb" -h "$DIR" -p "$port" -U uws "$DB"
    say "ready: $(url)"
    echo "export UWS_TEST_POSTGRES_URL=$(url)"
}

stop() {
    if [ -d "$DIR/data" ]; then
        local bin
        bin="$(bindir)"
        say "stopping the server in $DIR"
        as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
url) url ;;
*)
    say "usage: $0 start|stop|url"
    exit 2
    ;;
esac
