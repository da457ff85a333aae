#!/usr/bin/env bash
# A private, throwaway PostgreSQL cluster for the test suite and the benchmarks.
#
#   scripts/pg-test-cluster.sh start DIR   create and start a cluster in DIR (created if missing),
#                                          print its connection URL on stdout
#   scripts/pg-test-cluster.sh stop DIR    stop it and delete DIR
#   scripts/pg-test-cluster.sh pause DIR   stop the server, keep its data (outage tests)
#   scripts/pg-test-cluster.sh resume DIR  start a paused server again, same port and data
#
# It listens on a unix socket inside DIR and on 127.0.0.1 at a free port, with trust
# auth (loopback only, throwaway data). Durability is switched off (fsync, full page
# writes): nothing here outlives the run, and per-test CREATE DATABASE stays fast.
# PostgreSQL refuses to run as root, so under root the cluster belongs to an
# unprivileged user ($DJAMMS_PG_OWNER, default `nobody`); DIR's parents must let that
# user through, which is why callers put DIR directly under /tmp.
set -euo pipefail

superuser="djamms"
owner="${DJAMMS_PG_OWNER:-nobody}"

die() { echo "pg-test-cluster: $*" >&2; exit 1; }

find_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then
        echo "$PG_BINDIR"
        return
    fi
    # Debian keeps the server binaries out of PATH, one directory per major version.
    local newest
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -n "$newest" ] && [ -x "$newest/initdb" ]; then
        echo "$newest"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    else
        die "no PostgreSQL server binaries (initdb) found; run scripts/install-system-deps.sh --with-postgres"
    fi
}

# Run a command as the cluster's owner: directly when not root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid="$(id -u "$owner")" --regid="$(id -g "$owner")" --clear-groups -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local dir="$1" bindir port attempt
    bindir="$(find_bindir)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ ! -e "$dir/data" ] || die "$dir/data already exists"
    if [ "$(id -u)" -eq 0 ]; then
        id -u "$owner" >/dev/null 2>&1 || die "user $owner does not exist (set DJAMMS_PG_OWNER)"
        chown "$owner" "$dir"
    fi
    chmod 700 "$dir"
    # The owner's cwd must be readable by it (root's home is not).
    cd "$dir"
    as_owner "$bindir/initdb" --pgdata="$dir/data" --username="$superuser" --auth=trust \
        --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
        || die "initdb failed: $(tail -n 5 "$dir/initdb.log")"
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        as_owner tee "$dir/data/postgresql.auto.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
full_page_writes = off
synchronous_commit = off
EOF
        # -w: return only once the server accepts connections.
        if as_owner "$bindir/pg_ctl" --pgdata="$dir/data" --log="$dir/postgres.log" --wait --timeout=60 \
            start >"$dir/pg_ctl.log" 2>&1; then
            echo "postgresql://$superuser@127.0.0.1:$port/postgres" | tee "$dir/url"
            return 0
        fi
        echo "pg-test-cluster: start on port $port failed (attempt $attempt), retrying" >&2
    done
    die "could not start PostgreSQL: $(tail -n 5 "$dir/postgres.log" 2>/dev/null)"
}

pg_ctl_as_owner() {
    local dir="$1"
    shift
    (cd "$dir" && as_owner "$(find_bindir)/pg_ctl" --pgdata="$dir/data" --wait --timeout=60 "$@")
}

stop() {
    local dir="$1"
    [ -d "$dir" ] || return 0
    dir="$(cd "$dir" && pwd)"
    if [ -f "$dir/data/postmaster.pid" ]; then
        pg_ctl_as_owner "$dir" --mode=fast stop >/dev/null 2>&1 || echo "pg-test-cluster: pg_ctl stop failed in $dir" >&2
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    pause) [ $# -eq 2 ] || die "usage: $0 pause DIR"
        pg_ctl_as_owner "$(cd "$2" && pwd)" --mode=fast stop >/dev/null ;;
    resume) [ $# -eq 2 ] || die "usage: $0 resume DIR"
        dir="$(cd "$2" && pwd)"
        pg_ctl_as_owner "$dir" --log="$dir/postgres.log" start >/dev/null ;;
    *) die "usage: $0 start|stop|pause|resume DIR" ;;
esac
