# The outrun test box for machines with a Docker engine: the same box scripts/testbox makes with
# namespaces (Debian bookworm, openssh-server only: no python3, node or ffmpeg; root logs in by key).
#
# Build:
#   docker build -t outrun-testbox -f scripts/testbox.Dockerfile scripts
# Run (keys from `scripts/testbox` are reused if present: .testbox/keys/id_ed25519.pub is the client
# key, .testbox/keys/ssh_host_ed25519_key the host key pinned in .testbox/known_hosts):
#   docker run -d --name outrun-box --hostname outrun-box \
#     --device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor=unconfined \
#     -v "$PWD/.testbox/keys/id_ed25519.pub:/testbox/authorized_keys:ro" \
#     -v "$PWD/.testbox/keys/ssh_host_ed25519_key:/testbox/ssh_host_ed25519_key:ro" \
#     -p 127.0.0.1:2222:22 outrun-testbox
#   ssh -p 2222 -i .testbox/keys/id_ed25519 root@127.0.0.1
# /dev/fuse, CAP_SYS_ADMIN and no AppArmor confinement are what the outrun agent needs to mount FUSE
# inside the box. Instead of the authorized_keys file, the AUTHORIZED_KEYS environment variable may
# carry the public key(s). Without a host key, one is generated at start.
FROM debian:bookworm

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8

# openssh-server only, trimmed; no host keys baked in; root's password field "*" (key-only login:
# with UsePAM no, a locked "!" refuses even keys); fail if python3, node or ffmpeg crept in.

RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends openssh-server; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* \
        /usr/share/info/* /usr/share/locale/*/ /var/log/apt/* /var/log/*.log; \
    rm -f /etc/ssh/ssh_host_*; \
    sed -i 's/^root:[^:]*:/root:*:/' /etc/shadow; \
    install -d -m 700 /root/.ssh; \
    install -d -m 755 /run/sshd /testbox; \
    echo outrun-box >/etc/hostname; \
    for f in python3 node nodejs ffmpeg; do \
        if command -v "$f" >/dev/null || dpkg -s "$f" >/dev/null 2>&1; then \
            echo "forbidden: $f is in the image" >&2; exit 1; \
        fi; \
    done; \
    test -x /usr/sbin/sshd; test -x /usr/lib/openssh/sftp-server

RUN printf '%s\n' \
    '# outrun test box (scripts/testbox.Dockerfile)' \
    'Port 22' \
    'HostKey /etc/ssh/ssh_host_ed25519_key' \
    'PermitRootLogin prohibit-password' \
    'PubkeyAuthentication yes' \
    'AuthorizedKeysFile .ssh/authorized_keys' \
    'PasswordAuthentication no' \
    'KbdInteractiveAuthentication no' \
    'UsePAM no' \
    'UseDNS no' \
    'AllowTcpForwarding yes' \
    'AllowStreamLocalForwarding yes' \
    'StreamLocalBindUnlink yes' \
    'X11Forwarding no' \
    'PrintMotd no' \
    'PrintLastLog no' \
    'MaxSessions 64' \
    'MaxStartups 100' \
    'ClientAliveInterval 0' \
    'AcceptEnv LANG LC_*' \
    'Subsystem sftp /usr/lib/openssh/sftp-server' \
    >/etc/ssh/sshd_config \
 && printf '%s\n' \
    '#!/bin/sh' \
    'set -eu' \
    'umask 077' \
    'if [ -f /testbox/authorized_keys ]; then' \
    '  install -m 600 -o 0 -g 0 /testbox/authorized_keys /root/.ssh/authorized_keys' \
    'elif [ -n "${AUTHORIZED_KEYS:-}" ]; then' \
    '  printf "%s\n" "$AUTHORIZED_KEYS" >/root/.ssh/authorized_keys' \
    'fi' \
    '[ -s /root/.ssh/authorized_keys ] || echo "testbox: warning: no authorized key (mount /testbox/authorized_keys or set AUTHORIZED_KEYS)" >&2' \
    'if [ -f /testbox/ssh_host_ed25519_key ]; then' \
    '  install -m 600 -o 0 -g 0 /testbox/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key' \
    'elif [ ! -f /etc/ssh/ssh_host_ed25519_key ]; then' \
    '  ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key' \
    'fi' \
    'mkdir -p /run/sshd && chmod 755 /run/sshd' \
    'exec /usr/sbin/sshd -D -e "$@"' \
    >/usr/local/sbin/testbox-entrypoint \
 && chmod 755 /usr/local/sbin/testbox-entrypoint

EXPOSE 22
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/sbin/testbox-entrypoint"]
