#!/bin/sh
# Installs OpenSSH (server and client) from Debian's packages when missing: the remote-agent
# tests start a private sshd on 127.0.0.1 (tests/sshd.py). Run by `make test`.
set -eu
if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "openssh-server is missing and cannot be installed here (not root, no sudo);" \
        "install it, or set PYTEST_AGENTS_NO_SSH=1 to skip the remote-agent tests" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing openssh-server and openssh-client (for the remote-agent tests)"
$SUDO apt-get install -y -qq openssh-server openssh-client >/dev/null 2>&1 || {
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq openssh-server openssh-client >/dev/null
}
