# Sourced by docker/build.sh and docker/test.sh: picks the container engine and makes sure it
# can build and run here.
#   ENGINE   docker when an engine answers (`docker info`), else podman; TERSE_ENGINE overrides
#   BASE     the base image the Dockerfile starts from (debian:12)
# terse_engine_setup   installs/configures podman when it is the engine
# terse_base_image     makes a local debian:12 (debootstrap) when no registry can give one
BASE=${TERSE_BASE_IMAGE:-debian:12}

terse_log() { echo "[docker] $*" >&2; }

terse_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

terse_pick_engine() {
    if [ -n "${TERSE_ENGINE:-}" ]; then
        ENGINE=$TERSE_ENGINE
    elif command -v docker >/dev/null 2>&1 && timeout 30 docker info >/dev/null 2>&1; then
        ENGINE=docker
    else
        ENGINE=podman
    fi
    export ENGINE
}

# Debian's podman 4.3 works here as root with two settings: the runc runtime (crun fails on
# hybrid cgroup v1 hosts) and no default ulimits (setting RLIMIT_NOFILE is refused otherwise).
# /etc/containers/containers.conf gets them when it does not exist; an existing file that
# lacks them is left alone and a private copy of the settings is used through CONTAINERS_CONF.
terse_engine_setup() {
    terse_pick_engine
    if [ "$ENGINE" = docker ]; then
        export DOCKER_BUILDKIT=1 # RUN --mount=type=cache needs BuildKit
        return
    fi
    local need=()
    for c in podman buildah runc debootstrap; do
        command -v "$c" >/dev/null 2>&1 || need+=("$c")
    done
    if [ ${#need[@]} -gt 0 ]; then
        terse_log "installing podman (${need[*]} missing)"
        terse_as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive terse_as_root apt-get install -y -qq --no-install-recommends \
            podman buildah runc debootstrap uidmap slirp4netns containernetworking-plugins \
            iptables >/dev/null
    fi
    local conf=/etc/containers/containers.conf
    local settings='[containers]
default_ulimits = []

[engine]
runtime = "runc"'
    if [ -z "${CONTAINERS_CONF:-}" ]; then
        if [ ! -e "$conf" ]; then
            terse_log "writing $conf (runc runtime, no default ulimits)"
            printf '# written by terse docker/engine.sh\n%s\n' "$settings" | terse_as_root tee "$conf" >/dev/null
        elif ! grep -q '^default_ulimits *= *\[ *\]' "$conf" || ! grep -q '^runtime *= *"runc"' "$conf"; then
            local own=${XDG_RUNTIME_DIR:-/tmp}/terse-containers.conf
            printf '%s\n' "$settings" > "$own"
            export CONTAINERS_CONF=$own
            terse_log "$conf lacks runc/default_ulimits: using $own"
        fi
    fi
}

# A registry answers when the base can be pulled; otherwise the base is made locally, as
# Debian's official image is: debootstrap --variant=minbase from the mirror this machine uses,
# with this machine's Debian apt sources and Acquire settings, imported as debian:12 and
# docker.io/library/debian:12. The image is kept between runs (the cold start is this step).
terse_base_image() {
    if $ENGINE image inspect "$BASE" >/dev/null 2>&1; then
        return
    fi
    local qualified=$BASE
    case $BASE in */*) ;; *) qualified=docker.io/library/$BASE ;; esac
    if [ "${TERSE_BASE_PULL:-1}" != 0 ] && timeout 60 $ENGINE pull -q "$qualified" >/dev/null 2>&1; then
        terse_log "pulled $BASE"
        return
    fi
    terse_log "no registry gives $BASE: making it with debootstrap"
    local srcs=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # Debian's own suites only (third-party repositories need keys the image lacks).
        grep -Eq '^[^#]*([[:space:]]|^)bookworm(-updates|-security)?([[:space:]]|$)' "$f" && srcs+=("$f")
    done
    local mirror
    mirror=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}
                  /^deb / && $2 !~ /^\[/ && $2 ~ /\/debian\/?$/ {print $2; exit}' "${srcs[@]}" 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    local dir
    dir=$(mktemp -d /var/tmp/terse-debian12.XXXXXX)
    terse_log "debootstrap --variant=minbase bookworm from $mirror"
    if ! terse_as_root debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1; then
        tail -20 "$dir.log" >&2
        terse_as_root rm -rf "$dir" "$dir.log"
        return 1
    fi
    terse_as_root rm -f "$dir/etc/apt/sources.list"
    for f in "${srcs[@]}"; do
        case $f in
            /etc/apt/sources.list) terse_as_root cp "$f" "$dir/etc/apt/sources.list" ;;
            *) terse_as_root cp "$f" "$dir/etc/apt/sources.list.d/" ;;
        esac
    done
    for f in /etc/apt/apt.conf.d/*; do # proxies, Check-Valid-Until for snapshot mirrors
        [ -f "$f" ] && grep -q '^[^/#]*Acquire::' "$f" && terse_as_root cp "$f" "$dir/etc/apt/apt.conf.d/"
    done
    terse_as_root rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/tmp/*
    terse_as_root tar -C "$dir" --numeric-owner -c . | $ENGINE import -q - docker.io/library/debian:12 >/dev/null
    $ENGINE tag docker.io/library/debian:12 debian:12
    terse_as_root rm -rf "$dir" "$dir.log"
    terse_log "made $BASE ($($ENGINE image inspect --format '{{.Size}}' "$BASE") bytes)"
}
