#!/bin/sh
# Installs Debian's PostgreSQL server when missing: the pytest-django ecosystem test starts a
# private cluster of its own (initdb into a temporary directory, a free port on 127.0.0.1 and a
# unix socket there; see tests/e2e/ecosystem/conftest.py), never the system-wide one, which this
# script leaves stopped. Run by `make test`.
set -eu
for bin in /usr/lib/postgresql/*/bin/initdb; do
    if [ -x "$bin" ] && [ -x "$(dirname "$bin")/pg_ctl" ] && [ -x "$(dirname "$bin")/postgres" ]; then
        exit 0
    fi
done
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "postgresql is missing and cannot be installed here (not root, no sudo);" \
        "install it, or set PYTEST_AGENTS_NO_ECOSYSTEM=1 to skip the ecosystem tests" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package's own cluster must not start: policy-rc.d tells invoke-rc.d not to start services
# (only where no policy is there already), and the tests never use that cluster.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    CREATED_POLICY=1
fi
cleanup() { if [ -n "$CREATED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
echo "installing postgresql (for the pytest-django ecosystem test)"
$SUDO apt-get install -y -qq postgresql >/dev/null 2>&1 || {
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq postgresql >/dev/null
}
