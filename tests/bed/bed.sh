#!/usr/bin/env bash
# bed.sh - throwaway systemd test beds for aos-unit's system tests.
#
# PID 1 on the test machines is not systemd, so the system tests boot a real
# Debian bookworm systemd inside systemd-nspawn, each in its own tmpfs root and
# network namespace. See tests/bed/README.md for the design notes.
set -euo pipefail

BED_SELF=$(readlink -f "${BASH_SOURCE[0]}")
readonly BED_SELF
# Debian release of the bed: bookworm (systemd 252) or trixie (systemd 257).
readonly BED_SUITE=${AOS_BED_SUITE:-bookworm}
readonly BED_CACHE=${AOS_TEST_CACHE:-/var/cache/aos-unit-tests}/bed/$BED_SUITE
readonly BED_RUN=/run/aos-bed
readonly BED_HOST_SOURCES=${AOS_BED_SOURCES:-/etc/apt/sources.list.d/debian.sources}
readonly BED_TMPFS_SIZE=${AOS_BED_TMPFS_SIZE:-4G}
readonly BED_BOOT_TIMEOUT=${AOS_BED_BOOT_TIMEOUT:-120}
readonly BED_DOWN_TIMEOUT=${AOS_BED_DOWN_TIMEOUT:-20}
readonly BED_DEFAULT_MACHINE_ID=a05b0e7e57bed0000000000000000001
readonly BED_REPO_MOUNT=/srv/aos-bed-repo
readonly BED_INIT=/usr/local/sbin/aos-bed-init
readonly BED_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Installed in both flavours (on top of mmdebstrap's minbase).
readonly BASE_PACKAGES=(
  systemd systemd-sysv dbus systemd-resolved libnss-resolve polkitd
  procps iproute2
  # ssh into the test guests (dropbear, root/Password1): tests/lib/ssh.ts
  openssh-client sshpass
)
# Installed in "full"; available offline from the local repo in "base".
readonly EXTRA_PACKAGES=(
  qemu-system-x86 qemu-system-arm qemu-utils qemu-efi-aarch64 ovmf
  dnsmasq-base nftables conntrack socat iproute2 systemd-resolved polkitd
  logrotate
)

usage() {
  cat <<EOF
Usage: ${0##*/} COMMAND [ARGS]

Throwaway systemd containers (systemd-nspawn) for aos-unit's system tests.

Commands:
  rootfs FLAVOUR            Build (or reuse) the FLAVOUR (base|full) rootfs
                            tarball and print its path.
  up NAME [OPTIONS]         Boot a bed; prints "ready NAME LEADER_PID".
      --flavour base|full     rootfs flavour (default: full)
      --netns NETNS           run in this existing network namespace
                              (default: create aosbed-NAME with only lo up)
      --bind SRC:DST          bind-mount a host path (repeatable)
      --bind-ro SRC:DST       bind-mount a host path read-only (repeatable)
      --machine-id HEX        /etc/machine-id (default $BED_DEFAULT_MACHINE_ID)
  exec NAME [--user USER] [--] CMD...
                            Run CMD inside the bed (clean environment, stdin
                            passed through, CMD's exit code returned).
  cp-in NAME SRC DST        Copy a host file or directory into the bed.
  reboot NAME               Power the bed off and boot it again on the same root
                            (its files survive, as on a host reboot); prints
                            "rebooted NAME LEADER_PID".
  down NAME                 Power off and remove the bed (idempotent).
  down-all                  Bring down every bed under $BED_RUN.
  list                      List beds.

Environment:
  AOS_BED_SUITE             Debian release: bookworm (default, systemd 252)
                            or trixie (systemd 257)
  AOS_TEST_CACHE            cache root (default /var/cache/aos-unit-tests)
  AOS_BED_SOURCES           the host's apt sources; the bed's suite replaces
                            bookworm in them (default
                            /etc/apt/sources.list.d/debian.sources)
  AOS_BED_TMPFS_SIZE        size of a bed's root tmpfs (default 4G)
  AOS_BED_BOOT_TIMEOUT      seconds to wait for boot (default 120)
  AOS_BED_DOWN_TIMEOUT      seconds to wait for poweroff (default 20)
  AOS_BED_LOG_DIR           if set, down copies console.log there as NAME.log
EOF
}

log() { printf 'bed: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

case $BED_SUITE in bookworm | trixie) ;; *) die "unknown AOS_BED_SUITE '$BED_SUITE' (bookworm or trixie)" ;; esac

check_name() {
  [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,29}$ ]] ||
    die "bad bed name '$1' (want [a-z0-9][a-z0-9-]{0,29})"
}

# --- rootfs -----------------------------------------------------------------

# The customisation applied to both flavours; its text is part of the cache
# key, so editing it rebuilds the tarballs.
customize_rootfs() {
  local root=$1

  # apt sees only the local repo that "up" bind-mounts read-only.
  rm -f "$root"/etc/apt/sources.list.d/* "$root"/etc/apt/sources.list
  printf 'deb [trusted=yes] file:%s ./\n' "$BED_REPO_MOUNT" \
    >"$root/etc/apt/sources.list"
  mkdir -p "$root$BED_REPO_MOUNT"
  rm -rf "$root"/var/lib/apt/lists/*
  mount --bind -o ro "$BED_BUILD_REPO" "$root$BED_REPO_MOUNT"
  chroot "$root" apt-get update -qq || {
    umount "$root$BED_REPO_MOUNT"
    return 1
  }
  umount "$root$BED_REPO_MOUNT"

  # No locale or timezone questions or warnings.
  echo 'LANG=C.UTF-8' >"$root/etc/default/locale"
  ln -sf default/locale "$root/etc/locale.conf"
  ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
  echo 'Etc/UTC' >"$root/etc/timezone"
  ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"

  # Name resolution belongs to systemd-resolved.
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
  grep -q '^hosts:.*resolve' "$root/etc/nsswitch.conf"

  # udev would open up /dev/net/tun on a real host; nspawn keeps 0600.
  echo 'z /dev/net/tun 0666 - - -' >"$root/etc/tmpfiles.d/aos-bed-tun.conf"

  # nspawn mounts the cgroup v1 controllers read-only, which leaves
  # MemoryMax=, CPUQuota= etc. unenforced; make them writable, then boot.
  mkdir -p "${root}${BED_INIT%/*}"
  cat >"$root$BED_INIT" <<'EOF'
#!/bin/sh
# aos-bed init wrapper: make the cgroup v1 controllers writable, boot systemd.
for dir in /sys/fs/cgroup/*; do
  case ${dir##*/} in systemd | unified) continue ;; esac
  [ -L "$dir" ] && continue
  mountpoint -q "$dir" && mount -o remount,bind,rw "$dir"
done
exec /lib/systemd/systemd "$@"
EOF
  chmod 0755 "$root$BED_INIT"

  : >"$root/etc/machine-id"
  rm -f "$root"/var/cache/apt/archives/*.deb
}

cache_key() {
  {
    echo "suite=$BED_SUITE"
    echo "base=${BASE_PACKAGES[*]}"
    echo "extra=${EXTRA_PACKAGES[*]}"
    declare -f customize_rootfs write_repo_index hook_customize run_mmdebstrap suite_sources
  } | sha256sum | cut -c1-16
}

# Remove cache entries of other keys, unless a bed still uses them.
prune_cache() {
  local keep=$1 dir key
  for dir in "$BED_CACHE"/*/; do
    key=$(basename "$dir")
    [[ $key =~ ^[0-9a-f]{16}$ && $key != "$keep" ]] || continue
    grep -qsx "$key" "$BED_RUN"/*/key && continue
    log "pruning stale cache $dir"
    rm -rf "$dir"
  done
  # Repos hard-link their .debs: a .deb with one link is in no repo.
  find "$BED_CACHE/debs" -name '*.deb' -links 1 -delete
}

# Mount a scratch tmpfs for a build and print its path.
build_scratch() {
  local dir
  dir=$(mktemp -d /tmp/aos-bed-build.XXXXXX)
  mount -t tmpfs -o size=6G,mode=0755 aos-bed-build "$dir"
  echo "$dir"
}

drop_scratch() {
  local dir=$1
  umount -R "$dir" 2>/dev/null || umount -Rl "$dir"
  rmdir "$dir"
}

# The host's apt sources, pointed at the bed's suite (the host runs bookworm).
suite_sources() {
  local out=$1
  sed -E "s/\bbookworm(-updates|-security)?\b/${BED_SUITE}\1/g" "$BED_HOST_SOURCES" >"$out"
}

# Run mmdebstrap for FLAVOUR into OUT. Logs to LOG.
run_mmdebstrap() {
  local flavour=$1 out=$2 log=$3 keydir=$4
  local -a args=(
    --variant=minbase --mode=root --format=tar
    --skip=cleanup/apt/lists --aptopt='Acquire::Check-Valid-Until "false"'
    --customize-hook="'$BED_SELF' __customize $flavour \"\$1\""
  )
  local include
  if [[ $flavour == full ]]; then
    # Seed apt's archive with every .deb downloaded before.
    include=$(printf '%s\n' "${BASE_PACKAGES[@]}" "${EXTRA_PACKAGES[@]}" |
      sort -u | paste -sd,)
    args+=(
      --skip=essential/unlink --skip=download/empty
      --setup-hook='mkdir -p "$1/var/cache/apt/archives"'
      --setup-hook="cp -a '$BED_CACHE/debs/.' \"\$1/var/cache/apt/archives/\""
      --include="$include" "$BED_SUITE" "$out" "$keydir/sources"
    )
  else
    include=$(printf '%s\n' "${BASE_PACKAGES[@]}" | sort -u | paste -sd,)
    args+=(
      --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount
      --include="$include" "$BED_SUITE" "$out"
      "deb [trusted=yes] file://$keydir/repo ./"
    )
  fi
  suite_sources "$keydir/sources"
  BED_BUILD_KEYDIR=$keydir mmdebstrap "${args[@]}" >"$log" 2>&1
}

# Packages plus a Release naming the suite: mmdebstrap picks the essential
# and required packages by suite, and a flat repo has none without it.
write_repo_index() {
  local repo=$1 override=$2
  (
    cd "$repo"
    dpkg-scanpackages -m . "$override" >Packages 2>/dev/null
    cat <<EOF
Origin: aos-bed
Label: aos-bed
Suite: $BED_SUITE
Codename: $BED_SUITE
Architectures: $(dpkg --print-architecture) all
Date: $(LC_ALL=C date -Ru)
SHA256:
 $(sha256sum Packages | cut -d' ' -f1) $(stat -c %s Packages) Packages
EOF
  ) >"$repo/Release.new"
  mv "$repo/Release.new" "$repo/Release"
}

# mmdebstrap --customize-hook entry point (runs on the host, root mode).
hook_customize() {
  local flavour=$1 root=$2
  local keydir=$BED_BUILD_KEYDIR
  local archives=$root/var/cache/apt/archives

  if [[ $flavour == full ]]; then
    # Keep every download, then build the local repo from exactly the
    # installed package set (base is a subset of it).
    cp -an "$archives"/*.deb "$BED_CACHE/debs/"
    local repo=$keydir/repo.new deb
    rm -rf "$repo"
    mkdir -p "$repo"
    while read -r deb; do
      deb=${deb//:/%3a}.deb
      [[ -f $BED_CACHE/debs/$deb ]] || die "$deb not in the deb cache"
      ln "$BED_CACHE/debs/$deb" "$repo/$deb" 2>/dev/null ||
        cp "$BED_CACHE/debs/$deb" "$repo/$deb"
    done < <(dpkg-query --admindir="$root/var/lib/dpkg" \
      -W -f '${Package}_${Version}_${Architecture}\n')
    # Priorities as the archive overrides them (apt is "required" there but
    # "important" in its control file); mmdebstrap picks minbase by them.
    /usr/lib/apt/apt-helper cat-file "$root"/var/lib/apt/lists/*_Packages* |
      awk '/^Package:/ { p = $2 } /^Priority:/ { pr = $2 } /^Section:/ { s = $2 }
           /^$/ { if (p != "") print p, pr, s; p = pr = s = "" }' \
        >"$keydir/override"
    write_repo_index "$repo" "$keydir/override"
    rm -rf "$keydir/repo"
    mv "$repo" "$keydir/repo"
  fi
  BED_BUILD_REPO=$keydir/repo customize_rootfs "$root"
}

# Print the path of FLAVOUR's tarball, building it first if needed.
rootfs() {
  local flavour=$1
  [[ $flavour == base || $flavour == full ]] ||
    die "unknown flavour '$flavour' (base or full)"
  local key keydir tar
  key=$(cache_key)
  keydir=$BED_CACHE/$key
  tar=$keydir/$flavour.tar
  if [[ ! -f $tar ]]; then
    mkdir -p "$BED_CACHE/debs" "$keydir"
    exec {lock}>"$BED_CACHE/.lock"
    flock "$lock"
    if [[ ! -f $tar ]]; then
      build_rootfs "$flavour" "$keydir"
      prune_cache "$key"
    fi
    exec {lock}>&-
  fi
  echo "$tar"
}

build_rootfs() {
  local flavour=$1 keydir=$2
  # base is installed from the local repo, which the full build produces.
  if [[ $flavour == base && ! -f $keydir/full.tar ]]; then
    build_rootfs full "$keydir"
  fi
  local log=$keydir/build-$flavour.log start scratch
  start=$(now)
  log "building $flavour rootfs (log: $log)"
  scratch=$(build_scratch)
  if ! TMPDIR=$scratch run_mmdebstrap "$flavour" "$scratch/out.tar" \
    "$log" "$keydir"; then
    drop_scratch "$scratch"
    tail -n 25 "$log" >&2
    die "building the $flavour rootfs failed (log: $log)"
  fi
  cp "$scratch/out.tar" "$keydir/$flavour.tar.new"
  mv "$keydir/$flavour.tar.new" "$keydir/$flavour.tar"
  drop_scratch "$scratch"
  log "built $flavour rootfs in $(elapsed "$start")s"
}

# --- bed state --------------------------------------------------------------

bed_dir() { echo "$BED_RUN/$1"; }

state_get() { cat "$(bed_dir "$1")/$2" 2>/dev/null || true; }

# Field 22 of /proc/PID/stat: start time, to tell a reused PID apart.
proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  awk '{ print $20 }' <<<"$stat"
}

# True while PID is alive (not a zombie) and started at START.
proc_alive() {
  local pid=$1 start=$2 stat
  [[ -n $pid ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]] || return 1
  [[ $(awk '{ print $20 }' <<<"$stat") == "$start" ]]
}

bed_running() {
  local name=$1
  proc_alive "$(state_get "$name" nspawn-pid)" \
    "$(state_get "$name" nspawn-start)"
}

leader_of() {
  local name=$1 leader
  bed_running "$name" || die "bed '$name' is not running"
  leader=$(state_get "$name" leader)
  [[ -n $leader ]] || die "bed '$name' has no leader pid"
  echo "$leader"
}

# Every cgroup hierarchy mount and this process's cgroup in it, as
# "MOUNTPOINT PATH" lines.
cgroup_hierarchies() {
  awk '
    FNR == NR { split($0, f, ":"); cg[f[2]] = substr($0, length(f[1] f[2]) + 3); next }
    $3 == "cgroup2" && ("" in cg) { print $2, cg[""]; next }
    $3 == "cgroup" {
      n = split($4, opt, ",")
      for (c in cg) {
        if (c == "") continue
        k = split(c, want, ","); hit = 0
        for (i = 1; i <= k; i++) for (j = 1; j <= n; j++) if (opt[j] == want[i]) hit++
        if (hit == k) { print $2, cg[c]; break }
      }
    }' /proc/self/cgroup /proc/self/mounts
}

# Create the bed's cgroup below our own in every hierarchy, so that the
# container's systemd (which sees its cgroup as the root, through nspawn's
# cgroup namespace) never touches, or collides in, anyone else's.
cgroups_create() {
  local name=$1 list=$2 mnt path cg
  : >"$list"
  while read -r mnt path; do
    cg=${mnt}${path%/}/aos-bed-$name
    mkdir -p "$cg"
    echo "$cg" >>"$list"
    if [[ -f $cg/cpuset.cpus && ! -s $cg/cpuset.cpus ]]; then
      cat "${cg%/*}/cpuset.cpus" >"$cg/cpuset.cpus"
      cat "${cg%/*}/cpuset.mems" >"$cg/cpuset.mems"
    fi
  done < <(cgroup_hierarchies)
}

# The bed's cgroup directories: as recorded, or found by name.
cgroup_dirs() {
  local name=$1 list
  list=$(bed_dir "$name")/cgroups
  if [[ -s $list ]]; then
    cat "$list"
  else
    find /sys/fs/cgroup -maxdepth 6 -type d -name "aos-bed-$name" 2>/dev/null
  fi
  return 0
}

# --- up ---------------------------------------------------------------------

up() {
  local name="" flavour=full netns="" machine_id=$BED_DEFAULT_MACHINE_ID
  local -a binds=()
  while (($#)); do
    case $1 in
      --flavour) flavour=${2:?}; shift 2 ;;
      --netns) netns=${2:?}; shift 2 ;;
      --bind) binds+=("--bind=${2:?}"); shift 2 ;;
      --bind-ro) binds+=("--bind-ro=${2:?}"); shift 2 ;;
      --machine-id) machine_id=${2:?}; shift 2 ;;
      --flavour=* | --netns=* | --bind=* | --bind-ro=* | --machine-id=*)
        set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
      -*) die "up: unknown option $1" ;;
      *) [[ -z $name ]] || die "up: unexpected argument $1"; name=$1; shift ;;
    esac
  done
  [[ -n $name ]] || die "up: NAME is required"
  check_name "$name"
  [[ $machine_id =~ ^[0-9a-f]{32}$ ]] ||
    die "--machine-id must be 32 lowercase hex digits"
  local dir
  dir=$(bed_dir "$name")
  [[ ! -e $dir ]] || die "bed '$name' exists ($dir); run: ${0##*/} down $name"

  local tar keydir
  tar=$(rootfs "$flavour")
  keydir=${tar%/*}

  mkdir -p "$dir/root"
  # From here on, any failure tears down what was set up so far.
  BED_UP_NAME=$name
  trap up_failed EXIT
  echo "$flavour" >"$dir/flavour"
  echo "$BED_SUITE" >"$dir/suite"
  basename "$keydir" >"$dir/key"

  mount -t tmpfs -o "size=$BED_TMPFS_SIZE,mode=0755" "aos-bed-$name" "$dir/root"
  tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$tar" -C "$dir/root"
  echo "$machine_id" >"$dir/root/etc/machine-id"
  echo "$name" >"$dir/root/etc/hostname"

  if [[ -n $netns ]]; then
    [[ -e /run/netns/$netns ]] || die "network namespace '$netns' not found"
    echo no >"$dir/netns-owned"
  else
    netns=aosbed-$name
    echo yes >"$dir/netns-owned"
    ip netns add "$netns"
    ip -n "$netns" link set lo up
  fi
  echo "$netns" >"$dir/netns"
  # /proc/sys is read-only inside nspawn.
  ip netns exec "$netns" sysctl -qw net.ipv4.ip_forward=1

  cgroups_create "$name" "$dir/cgroups"

  # shellcheck disable=SC2054 # --capability takes a comma-separated list
  local -a nspawn=(
    systemd-nspawn -D "$dir/root" --machine="$name"
    --register=no --keep-unit --resolv-conf=off --timezone=off
    --link-journal=no --capability=CAP_NET_ADMIN,CAP_NET_RAW
    --kill-signal=SIGRTMIN+3 --console=passive
    --bind-ro="$keydir/repo:$BED_REPO_MOUNT" "${binds[@]}"
    "$BED_INIT"
  )
  printf '%s\0' "${nspawn[@]}" >"$dir/nspawn-args"
  launch "$name"
  local leader
  leader=$(state_get "$name" leader)

  trap - EXIT
  echo "ready $name $leader"
}

# Start systemd-nspawn for the bed with the arguments `up` recorded, wait for its
# init and for the boot to finish. The launcher moves itself into the bed's cgroups,
# starts nspawn and reaps it (PID 1 here reaps orphans only lazily).
launch() {
  local name=$1 dir netns
  dir=$(bed_dir "$name")
  netns=$(state_get "$name" netns)
  local -a nspawn=()
  mapfile -d '' -t nspawn <"$dir/nspawn-args"
  rm -f "$dir/nspawn-pid"
  (
    local cg fd
    for cg in $(cgroup_dirs "$name"); do
      echo "$BASHPID" >"$cg/cgroup.procs"
    done
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    # setsid: a Ctrl-C aimed at the caller must not reach the bed. /proc/sys/net stays
    # writable, as on a host: aos-unit turns forwarding on in the namespaces it makes
    # (nspawn, given no network of its own to manage, would make all of /proc/sys ro).
    TERM=dumb SYSTEMD_NSPAWN_API_VFS_WRITABLE=network \
      setsid nsenter --net="/run/netns/$netns" "${nspawn[@]}" &
    echo "$!" >"$dir/nspawn-pid.new"
    proc_start "$!" >"$dir/nspawn-start"
    mv "$dir/nspawn-pid.new" "$dir/nspawn-pid"
    wait "$!" || true
  ) </dev/null >>"$dir/console.log" 2>&1 &
  echo "$!" >"$dir/launcher-pid"
  proc_start "$!" >"$dir/launcher-start"
  local npid deadline=$((SECONDS + 10))
  until [[ -s $dir/nspawn-pid ]]; do
    ((SECONDS < deadline)) || die "systemd-nspawn did not start"
    sleep 0.05
  done
  npid=$(<"$dir/nspawn-pid")
  local leader
  leader=$(wait_leader "$name" "$npid")
  echo "$leader" >"$dir/leader"
  proc_start "$leader" >"$dir/leader-start"
  wait_booted "$name" "$leader"
}

# Power the container off and boot it again on the same root (what a host reboot is
# to the guests: /var/lib survives, /run does not). Prints "rebooted NAME LEADER_PID".
reboot_bed() {
  local name=${1:?reboot: NAME is required}
  check_name "$name"
  local npid nstart leader deadline
  npid=$(state_get "$name" nspawn-pid)
  nstart=$(state_get "$name" nspawn-start)
  leader=$(leader_of "$name")
  timeout 5 nsenter -t "$leader" -a env -i PATH="$BED_PATH" \
    systemctl start --no-block --job-mode=replace-irreversibly poweroff.target >/dev/null 2>&1 ||
    kill -TERM "$npid"
  deadline=$((SECONDS + BED_DOWN_TIMEOUT))
  while proc_alive "$npid" "$nstart" && ((SECONDS < deadline)); do sleep 0.1; done
  proc_alive "$npid" "$nstart" && die "bed '$name' did not power off in ${BED_DOWN_TIMEOUT}s"
  local lpid lstart
  lpid=$(state_get "$name" launcher-pid)
  lstart=$(state_get "$name" launcher-start)
  deadline=$((SECONDS + 3))
  while proc_alive "$lpid" "$lstart" && ((SECONDS < deadline)); do sleep 0.05; done
  # nspawn leaves its payload/ and supervisor/ cgroups behind; the next boot makes them anew.
  local cg
  for cg in $(cgroup_dirs "$name"); do
    [[ -d $cg ]] && find "$cg" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
  done
  launch "$name"
  echo "rebooted $name $(state_get "$name" leader)"
}

up_failed() {
  local rc=$?
  log "up failed; cleaning up"
  tail_console "$BED_UP_NAME"
  down "$BED_UP_NAME" >/dev/null 2>&1 || true
  exit "$rc"
}

tail_console() {
  local log
  log=$(bed_dir "$1")/console.log
  [[ -s $log ]] || return 0
  log "last lines of $log:"
  tail -n 20 "$log" | sed 's/^/  | /' >&2
}

# The container's PID 1: the child of nspawn in another PID namespace that
# has exec'd systemd.
wait_leader() {
  local name=$1 npid=$2 deadline=$((SECONDS + BED_BOOT_TIMEOUT)) child
  local start
  start=$(state_get "$name" nspawn-start)
  local self_ns
  self_ns=$(readlink /proc/self/ns/pid)
  while ((SECONDS < deadline)); do
    proc_alive "$npid" "$start" || die "systemd-nspawn exited during boot"
    for child in $(pgrep -P "$npid"); do
      [[ $(readlink "/proc/$child/ns/pid" 2>/dev/null) != "$self_ns" ]] ||
        continue
      [[ $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]] || continue
      echo "$child"
      return 0
    done
    sleep 0.1
  done
  die "no container init after ${BED_BOOT_TIMEOUT}s"
}

wait_booted() {
  local name=$1 leader=$2 deadline=$((SECONDS + BED_BOOT_TIMEOUT)) state
  local npid start
  npid=$(state_get "$name" nspawn-pid)
  start=$(state_get "$name" nspawn-start)
  while ((SECONDS < deadline)); do
    proc_alive "$npid" "$start" || die "systemd-nspawn exited during boot"
    state=$(timeout $((deadline - SECONDS + 1)) \
      nsenter -t "$leader" -a env -i PATH="$BED_PATH" \
      systemctl is-system-running --wait 2>/dev/null) || true
    case $state in
      running) return 0 ;;
      degraded)
        log "bed '$name' is degraded; failed units:"
        nsenter -t "$leader" -a env -i PATH="$BED_PATH" \
          systemctl --failed --no-legend --plain >&2 || true
        return 0 ;;
      maintenance | stopping | offline) die "bed '$name' boot ended in '$state'" ;;
    esac
    sleep 0.2
  done
  die "bed '$name' not booted after ${BED_BOOT_TIMEOUT}s (state '$state')"
}

# --- exec / cp-in -----------------------------------------------------------

bed_exec() {
  local name=${1:?exec: NAME is required} user=""
  shift
  check_name "$name"
  while (($#)); do
    case $1 in
      --user) user=${2:?}; shift 2 ;;
      --user=*) user=${1#*=}; shift ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  (($#)) || die "exec: CMD is required"
  local leader
  leader=$(leader_of "$name")
  local -a enter=(nsenter -t "$leader" -a env -i PATH="$BED_PATH" TERM=dumb)
  if [[ -z $user ]]; then
    exec "${enter[@]}" "$@"
  fi
  # A login-ish environment: HOME, USER, LOGNAME, SHELL, PATH, cwd $HOME.
  # shellcheck disable=SC2016
  exec "${enter[@]}" sh -c '
    user=$1; shift
    gid=$(id -g "$user") || exit 125
    exec setpriv --reuid="$user" --regid="$gid" --init-groups --reset-env \
      sh -c '\''cd "$HOME" 2>/dev/null || cd /
        [ -d "/run/user/$(id -u)" ] && export XDG_RUNTIME_DIR="/run/user/$(id -u)"
        exec "$@"'\'' sh "$@"' sh "$user" "$@"
}

cp_in() {
  (($# == 3)) || die "usage: cp-in NAME SRC DST"
  local name=$1 src=$2 dst=$3
  check_name "$name"
  leader_of "$name" >/dev/null
  [[ -e $src ]] || die "cp-in: $src not found"
  # Go through the container's mount namespace, so /tmp, /run etc. work.
  if [[ -d $src ]]; then
    tar -C "$src" -cf - . | bed_exec "$name" sh -c \
      'mkdir -p "$1" && tar -C "$1" -xf - --no-same-owner' sh "$dst"
  else
    local mode
    mode=$(stat -c %a "$src")
    bed_exec "$name" sh -c '
      dst=$1; case $dst in */) dst=$dst$2 ;; esac
      [ -d "$dst" ] && dst=$dst/$2
      cat >"$dst" && chmod "$3" "$dst"' sh "$dst" "${src##*/}" "$mode" <"$src"
  fi
}

# --- down -------------------------------------------------------------------

down() {
  local name=${1:?down: NAME is required}
  check_name "$name"
  local dir
  dir=$(bed_dir "$name")
  local npid nstart leader start deadline took=""
  npid=$(state_get "$name" nspawn-pid)
  nstart=$(state_get "$name" nspawn-start)
  leader=$(state_get "$name" leader)

  if proc_alive "$npid" "$nstart"; then
    start=$(now)
    if [[ -n $leader ]]; then
      # poweroff.target straight from PID 1: `systemctl poweroff` asks logind first, and a
      # logind that lost the bus (a test restarted dbus) stalls it until the timeout.
      timeout 5 nsenter -t "$leader" -a env -i PATH="$BED_PATH" \
        systemctl start --no-block --job-mode=replace-irreversibly poweroff.target \
        >/dev/null 2>&1 || kill -TERM "$npid"
    else
      kill -TERM "$npid"
    fi
    deadline=$((SECONDS + BED_DOWN_TIMEOUT))
    while proc_alive "$npid" "$nstart" && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if proc_alive "$npid" "$nstart"; then
      log "bed '$name' did not power off in ${BED_DOWN_TIMEOUT}s; killing it"
      # Killing the container's PID 1 kills its PID namespace; nspawn then
      # exits by itself and reaps it (no zombie left for the lazy PID 1).
      if proc_alive "$leader" "$(state_get "$name" leader-start)"; then
        kill -KILL "$leader" 2>/dev/null || true
        deadline=$((SECONDS + 3))
        while proc_alive "$npid" "$nstart" && ((SECONDS < deadline)); do
          sleep 0.1
        done
      fi
      kill -KILL "$npid" 2>/dev/null || true
      took="killed after $(elapsed "$start")s"
    else
      took="poweroff took $(elapsed "$start")s"
    fi
  fi
  # Let the launcher reap nspawn and exit by itself rather than kill it.
  local lpid lstart
  lpid=$(state_get "$name" launcher-pid)
  lstart=$(state_get "$name" launcher-start)
  deadline=$((SECONDS + 3))
  while proc_alive "$lpid" "$lstart" && ((SECONDS < deadline)); do
    sleep 0.05
  done
  kill_cgroups "$name"

  if [[ -d $dir/root ]]; then
    if mountpoint -q "$dir/root"; then
      umount -R "$dir/root" 2>/dev/null || umount -Rl "$dir/root"
    fi
    mountpoint -q "$dir/root" && die "could not unmount $dir/root"
  fi

  local netns owned
  netns=$(state_get "$name" netns)
  owned=$(state_get "$name" netns-owned)
  if [[ ! -d $dir ]]; then
    # No state left: the default name is ours by convention.
    netns=aosbed-$name owned=yes
  fi
  if [[ $owned == yes && -n $netns && -e /run/netns/$netns ]]; then
    ip netns del "$netns"
  fi

  if [[ -n ${AOS_BED_LOG_DIR:-} && -s $dir/console.log ]]; then
    mkdir -p "$AOS_BED_LOG_DIR"
    cp "$dir/console.log" "$AOS_BED_LOG_DIR/$name.log"
  fi
  rm -rf --one-file-system "$dir"
  rmdir "$BED_RUN" 2>/dev/null || true
  echo "down $name${took:+ ($took)}"
}

# Kill whatever is left in the bed's cgroups, then remove them depth-first.
kill_cgroups() {
  local name=$1 cg pids
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(for cg in $(cgroup_dirs "$name"); do
      [[ -d $cg ]] && find "$cg" -name cgroup.procs -exec cat {} +
    done | sort -u)
    [[ -z $pids ]] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
  for cg in $(cgroup_dirs "$name"); do
    [[ -d $cg ]] || continue
    for _ in 1 2 3 4 5; do
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d $cg ]] || break
      sleep 0.2
    done
    [[ -d $cg ]] && log "warning: could not remove $cg"
  done
  return 0
}

down_all() {
  local dir
  for dir in "$BED_RUN"/*/; do
    [[ -d $dir ]] || continue
    down "$(basename "$dir")"
  done
}

list() {
  local dir name state
  printf '%-16s %-8s %-8s %-8s %s\n' NAME FLAVOUR STATE LEADER NETNS
  for dir in "$BED_RUN"/*/; do
    [[ -d $dir ]] || continue
    name=$(basename "$dir")
    if bed_running "$name"; then state=running; else state=dead; fi
    printf '%-16s %-8s %-8s %-8s %s\n' "$name" \
      "$(state_get "$name" flavour)" "$state" \
      "$(state_get "$name" leader)" "$(state_get "$name" netns)"
  done
}

main() {
  (($#)) || { usage >&2; exit 2; }
  local cmd=$1
  shift
  case $cmd in -h | --help | help) ;; *) ((EUID == 0)) || die "must run as root" ;; esac
  case $cmd in
    -h | --help | help) usage ;;
    rootfs) (($# == 1)) || die "usage: rootfs FLAVOUR"; rootfs "$1" ;;
    up) up "$@" ;;
    exec) bed_exec "$@" ;;
    cp-in) cp_in "$@" ;;
    down) (($# == 1)) || die "usage: down NAME"; down "$1" ;;
    reboot) (($# == 1)) || die "usage: reboot NAME"; reboot_bed "$1" ;;
    down-all) down_all ;;
    list) list ;;
    __customize) hook_customize "$@" ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
