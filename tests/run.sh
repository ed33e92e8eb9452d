#!/bin/sh
# The whole test suite on a fresh Debian machine: installs what the tests
# drive (SIPp, baresip and Linphone, PostgreSQL, promtool from prometheus, Chromium and
# ChromeDriver for the agent page, SIPVicious, fail2ban and openssl for
# the edge, Kamailio in front of a cluster, iproute2 for ss), starts PostgreSQL with a test role that may
# create databases (each store test makes its own), then runs `cargo test`.
# Run as root or as a user with sudo. Extra arguments go to `cargo test`.
set -eu
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

export DEBIAN_FRONTEND=noninteractive
as_root apt-get update
as_root apt-get install -y sip-tester baresip linphone-cli postgresql prometheus chromium \
    chromium-driver sipvicious fail2ban openssl kamailio iproute2

# Debian's package creates one cluster; start it (containers have no init).
cluster=$(pg_lsclusters -h | awk 'NR == 1 { print $1, $2, $3 }')
[ -n "$cluster" ] || { echo "tests/run.sh: no PostgreSQL cluster after install" >&2; exit 1; }
version=$(echo "$cluster" | cut -d' ' -f1)
name=$(echo "$cluster" | cut -d' ' -f2)
port=$(echo "$cluster" | cut -d' ' -f3)
as_root pg_ctlcluster "$version" "$name" start 2>/dev/null || true
tries=0
until pg_isready -q -h 127.0.0.1 -p "$port"; do
    tries=$((tries + 1))
    [ "$tries" -lt 30 ] || { echo "tests/run.sh: PostgreSQL did not start on port $port" >&2; exit 1; }
    sleep 1
done
as_root runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 -c "
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hotline_test') THEN
    CREATE ROLE hotline_test LOGIN CREATEDB PASSWORD 'hotline_test';
  END IF;
END \$\$;"

export HOTLINE_TEST_POSTGRES="postgres://hotline_test:hotline_test@127.0.0.1:$port/postgres"
cargo test "$@"
