#!/usr/bin/env bash
# Make sure this machine can run tests/test_local_faults.py, which makes a read-only folder and a
# small full disk with mounts inside a private mount namespace (tests/support/disks.py). Without
# one those tests skip, and under CI=true a skipped test is a failure (tests/conftest.py): this
# fails first, in a second, saying what CI must provide.
#
# It does what the tests do: `unshare --mount --propagation private` (plus `--user
# --map-root-user` when not root), a read-only bind mount and a small tmpfs inside it.
set -euo pipefail

fail() {
    cat >&2 <<MESSAGE
check-mount-namespace: $1
tests/test_local_faults.py needs a private mount namespace to make a read-only folder and a full
disk, and CI=true fails a skipped test. CI must provide:
  - util-linux's unshare and nsenter, and mount;
  - the right to make a mount namespace and mount in it: run the tests as root (in a container
    that needs CAP_SYS_ADMIN, e.g. \`docker run --privileged\`, or \`--cap-add SYS_ADMIN\` with
    seccomp and AppArmor unconfined), or, as another user, a kernel that allows unprivileged
    user namespaces (sysctl kernel.unprivileged_userns_clone=1 where it exists,
    user.max_user_namespaces > 0, and on Ubuntu 23.10+ kernel.apparmor_restrict_unprivileged_userns=0).
MESSAGE
    exit 1
}

for tool in unshare nsenter mount; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (util-linux)"
done

namespace=(unshare --mount --propagation private)
if [ "$(id -u)" -ne 0 ]; then
    namespace+=(--user --map-root-user)
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/read-only" "$scratch/small-disk"
# shellcheck disable=SC2016  # expanded by the inner shell
if ! said=$("${namespace[@]}" sh -c '
    mount --bind "$1/read-only" "$1/read-only" &&
    mount -o remount,bind,ro "$1/read-only" &&
    mount -t tmpfs -o size=64k,mode=0755 tmpfs "$1/small-disk"
' sh "$scratch" 2>&1); then
    fail "\`${namespace[*]}\` with a read-only bind mount and a tmpfs inside failed: ${said:-no message}"
fi
echo "check-mount-namespace: ${namespace[*]} makes a read-only bind mount and a tmpfs"
