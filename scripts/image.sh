#!/usr/bin/env bash
# Builds promcast's container image on this machine, offline, with podman: the same image as
# the top-level Containerfile (same paths, user, entrypoint, command, labels, ports and volume)
# without pulling a base image or downloading anything.
#
#   scripts/image.sh [TAG]        # default TAG: localhost/promcast:<version in Cargo.toml>
#
# The binary is `cargo build --release --locked` (in $CARGO_TARGET_DIR, or cargo's own target
# directory), or the one env PROMCAST_BINARY names (tests/image.rs passes its own). The root
# filesystem is assembled in a temporary directory: the stripped binary, the shared libraries
# `ldd` lists and the dynamic loader, /etc/passwd and /etc/group with nobody/nogroup (65534),
# /etc/nsswitch.conf, the CA bundle (/etc/ssl/certs/ca-certificates.crt: reqwest uses the
# system trust store), examples/container.yml as /etc/promcast/promcast.yml, an empty /tmp;
# scripts/Containerfile.offline (FROM scratch) copies it and adds /var/lib/promcast owned by
# 65534. The git revision goes into the org.opencontainers.image.revision label. The last
# line on stdout is the tag built; everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian package $1 when program $2 is neither on PATH nor in /usr/bin (as
# scripts/test.sh does).
need() {
    if command -v "$2" >/dev/null 2>&1 || [ -x "/usr/bin/$2" ]; then return 0; fi
    echo "+ $2 not found: installing the Debian package $1" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >&2
}
need podman podman
need binutils strip
need libc-bin ldd

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
tag=${1:-localhost/promcast:$version}
# What build.rs embeds (`promcast --version`, promcast_build_info).
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
source_url=${PROMCAST_SOURCE:-https://github.com/example/promcast}

if [ -n "${PROMCAST_BINARY:-}" ]; then
    bin=$PROMCAST_BINARY
    echo "+ binary: $bin (PROMCAST_BINARY)" >&2
else
    echo "+ cargo build --release --locked" >&2
    cargo build --release --locked >&2
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    bin="$target_dir/release/promcast"
fi
[ -x "$bin" ] || { echo "image.sh: $bin is not an executable" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/promcast-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
# /var/lib here, owned by root: COPY --chown would give the parents it creates to 65534 too.
mkdir -p "$root/usr/local/bin" "$root/etc/promcast" "$root/etc/ssl/certs" "$root/var/lib" \
    "$work/volume"
install -d -m 1777 "$root/tmp"

strip --strip-all -o "$root/usr/local/bin/promcast" "$bin"
chmod 0755 "$root/usr/local/bin/promcast"

# The shared libraries and the loader, at the paths ldd resolves them to (the loader at the
# binary's ELF interpreter path), as plain files.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "image.sh: ldd lists no libraries for $bin (a static binary?)" >&2; exit 1; }
for lib in $libs; do
    install -D -m 0755 "$lib" "$root$lib"
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
cat >"$root/etc/nsswitch.conf" <<'NSS'
passwd: files
group: files
hosts: files dns
NSS
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"

ca=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$ca" ]; then
    need ca-certificates update-ca-certificates
    [ -s "$ca" ] || update-ca-certificates >&2
fi
install -m 0644 "$ca" "$root$ca"
install -m 0644 examples/container.yml "$root/etc/promcast/promcast.yml"

cp scripts/Containerfile.offline "$work/Containerfile"
echo "+ podman build -t $tag (rootfs $(du -sk "$root" | cut -f1) KiB, revision $revision)" >&2
podman build --pull=never --network=none -f "$work/Containerfile" -t "$tag" \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    --build-arg "SOURCE=$source_url" \
    "$work" >&2
echo "$tag"
