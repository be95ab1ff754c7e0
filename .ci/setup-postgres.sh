#!/usr/bin/env bash
# Make sure this machine can run the PostgreSQL server that tests/test_destinations.py starts by
# itself (on 127.0.0.1, in a temporary folder, as the `postgres` system user when run as root).
#
# Installs nothing when the server binaries (initdb, pg_ctl, postgres) and the user are there.
# Otherwise installs Debian's `postgresql` package (the server of the release's default major
# version, e.g. postgresql-15 on bookworm; it also creates the `postgres` user) without creating
# or starting the package's own `main` cluster: the tests need none.
set -euo pipefail

have_binaries() {
    local dir
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            return 0
        fi
    done
    return 1
}

have_user() {
    # As a non-root user the server simply runs as that user.
    [ "$(id -u)" -ne 0 ] || id -u postgres >/dev/null 2>&1
}

if have_binaries && have_user; then
    echo "setup-postgres: PostgreSQL server binaries and the postgres user are present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-postgres: PostgreSQL is missing and installing it needs root (or sudo)" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-postgres: no apt-get; install a PostgreSQL server (initdb, pg_ctl) by hand" >&2
    exit 1
fi

echo "setup-postgres: installing Debian's postgresql package"
# Do not create (and start) the package's default cluster: the tests run their own.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" |
    $SUDO tee /etc/postgresql-common/createcluster.d/deck-tests.conf >/dev/null
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null

if ! have_binaries || ! have_user; then
    echo "setup-postgres: postgresql was installed but initdb or the postgres user is missing" >&2
    exit 1
fi
echo "setup-postgres: ready ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))"
