#!/usr/bin/env bash
# Provisions everything an ARM cross build of relattn needs, from Debian
# packages only:
#   - on the host: the cross compiler (g++-<triple>) and qemu-user, through
#     install-deps.sh (with the host build's packages);
#   - a sysroot with the target's libraries and headers (libhwy, pthreadpool,
#     doctest, XNNPACK + cpuinfo for an optional bench build, libc, libstdc++),
#     downloaded as .debs for the target architecture with a private apt state
#     (the host's dpkg and apt lists are not touched: no dpkg
#     --add-architecture, which breaks apt-get update here) and unpacked with
#     dpkg-deb -x.
# The archive addresses come from this machine's own apt sources.
# Idempotent: a sysroot whose stamp matches the package list is left alone.
#
# Usage: bash toolchains/provision-sysroot.sh arm64|armhf [SYSROOT_PARENT]
#   SYSROOT_PARENT defaults to build/sysroots (ignored by git); the sysroot is
#   SYSROOT_PARENT/<arch>, which is where the toolchain files look.
# Exit status: 0 ready; 3 the toolchain or the packages could not be
# installed or downloaded (callers may skip the cross suite); other: a bug.
set -euo pipefail

arch="${1:?usage: provision-sysroot.sh arm64|armhf [sysroot-parent]}"
root_dir="$(cd "$(dirname "$0")/.." && pwd)"
parent="${2:-$root_dir/build/sysroots}"
case "$arch" in
  arm64) triple=aarch64-linux-gnu qemu=qemu-aarch64 ;;
  armhf) triple=arm-linux-gnueabihf qemu=qemu-arm ;;
  *) echo "provision-sysroot: unknown architecture '$arch' (arm64 or armhf)" >&2; exit 2 ;;
esac

unavailable() {
  echo "provision-sysroot: $arch: $*" >&2
  exit 3
}

# 1. Host tools. install-deps.sh installs only what is missing.
bash "$root_dir/toolchains/install-deps.sh" "g++-$triple" qemu-user ||
  unavailable "could not install g++-$triple and qemu-user"
command -v "$triple-g++" >/dev/null || unavailable "$triple-g++ not found after install"
command -v "$qemu" >/dev/null || unavailable "$qemu not found after install"

# 2. The sysroot.
packages=(libc6 libgcc-s1 libstdc++6 libhwy1 libhwy-dev libpthreadpool0 libpthreadpool-dev
  doctest-dev libcpuinfo0 libxnnpack0 libxnnpack-dev)
sysroot="$parent/$arch"
state="$parent/.apt-$arch"
stamp="$sysroot/.provisioned"
wanted="packages: ${packages[*]}"
if [ -f "$stamp" ] && [ "$(head -n 1 "$stamp")" = "$wanted" ]; then
  echo "provision-sysroot: $arch sysroot ready at $sysroot"
  exit 0
fi

# The Debian suites this machine uses, as one-line sources restricted to the
# target architecture. Only the suites of this release (codename, -updates,
# -security) are taken; other vendors' repositories have no ARM packages.
# armhf leaves out the security suite: its armhf index fails apt's size check.
. /etc/os-release
codename="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"
sources_lines() {
  local f
  # deb822 (.sources): stanzas separated by blank lines.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; comps = ""; key = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^#/) continue
          split(line, kv, ":")
          name = tolower(kv[1]); value = substr(line, length(kv[1]) + 2)
          gsub(/^[ \t]+|[ \t]+$/, "", value)
          if (name == "types") types = value
          else if (name == "uris") uris = value
          else if (name == "suites") suites = value
          else if (name == "components") comps = value
          else if (name == "signed-by") key = (value ~ /^\//) ? value : ""
          else if (name == "enabled") enabled = tolower(value)
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        n_uri = split(uris, u, " "); n_suite = split(suites, s, " ")
        for (a = 1; a <= n_uri; a++) for (b = 1; b <= n_suite; b++)
          print u[a], s[b], comps, key
      }' "$f"
  done
  # One-line format (sources.list and *.list).
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' "$f" | awk '$1 == "deb" {
        key = ""; i = 2
        if ($2 ~ /^\[/) {
          while (i <= NF) {
            if ($i ~ /^\[?signed-by=/) { key = $i; sub(/^\[?signed-by=/, "", key); sub(/\]$/, "", key) }
            if ($i ~ /\]$/) { i++; break }
            i++
          }
        }
        comps = ""
        for (c = i + 2; c <= NF; c++) comps = comps (comps == "" ? "" : " ") $c
        print $i, $(i + 1), comps, key
      }'
  done
}

mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/parts" "$state/debs"
: > "$state/status"
: > "$state/sources.list.new"
while read -r uri suite rest; do
  case "$suite" in
    "$codename" | "$codename-updates") ;;
    "$codename-security") [ "$arch" = armhf ] && continue ;;
    *) continue ;;
  esac
  # rest = "components... [keyring]": a keyring is an absolute path.
  key="${rest##* }"
  comps="$rest"
  opts="arch=$arch"
  if [ "${key#/}" != "$key" ]; then
    comps="${rest% *}"
    opts="$opts signed-by=$key"
  fi
  echo "deb [$opts] $uri $suite $comps" >> "$state/sources.list.new"
done < <(sources_lines)
if [ ! -s "$state/sources.list.new" ]; then
  unavailable "no Debian '$codename' suite in this machine's apt sources"
fi
mv "$state/sources.list.new" "$state/sources.list"
echo "provision-sysroot: $arch sources:"
sed 's/^/  /' "$state/sources.list"

apt_private=(
  -o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
  -o "Dir::State=$state" -o "Dir::State::Lists=$state/lists"
  -o "Dir::State::Status=$state/status" -o "Dir::Cache=$state/cache"
  -o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=$state/parts"
  -o "Dir::Etc::Preferences=$state/parts/none" -o "Dir::Etc::PreferencesParts=$state/parts"
  -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root" -q
)
if ! apt-get "${apt_private[@]}" update; then
  # The base suite has every package needed; the security suite only newer
  # builds of some. Without it if its index cannot be had.
  grep -q -- "-security " "$state/sources.list" ||
    unavailable "apt-get update of the $arch indexes failed"
  echo "provision-sysroot: $arch: retrying without the security suite"
  sed -i '/-security /d' "$state/sources.list"
  apt-get "${apt_private[@]}" update || unavailable "apt-get update of the $arch indexes failed"
fi
(cd "$state/debs" && rm -f ./*.deb &&
  apt-get "${apt_private[@]}" download "${packages[@]}") ||
  unavailable "could not download the $arch packages: ${packages[*]}"

rm -rf "$sysroot"
mkdir -p "$sysroot"
for deb in "$state/debs"/*.deb; do
  dpkg-deb -x "$deb" "$sysroot"
done
# Absolute symbolic links (libc6's /lib/ld-linux-*.so.*, some .so links) would
# point into the host: make them relative to the sysroot, for the linker and
# for qemu -L.
while IFS= read -r link; do
  target="$(readlink "$link")"
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link" ;;
  esac
done < <(find "$sysroot" -type l)

{
  echo "$wanted"
  (cd "$state/debs" && ls ./*.deb | sed 's|^\./||')
} > "$stamp"
echo "provision-sysroot: $arch sysroot ready at $sysroot ($(du -sh "$sysroot" | cut -f1))"
