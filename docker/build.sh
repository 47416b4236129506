#!/usr/bin/env bash
# Builds the terse images from docker/Dockerfile:
#   docker/build.sh [target ...]      targets: runtime runtime-slim rdma dev (default: all)
# tagged terse:<target>. The engine is docker when `docker info` answers, else podman
# (installed and configured if missing); TERSE_ENGINE=docker|podman overrides. FROM debian:12
# comes from a registry, or is made here with debootstrap when none can be reached, and kept.
# Layers and the apt downloads (cache mounts) are reused by later builds: a source change
# rebuilds the compile and the final COPY layers only.
set -euo pipefail
cd "$(dirname "$0")/.."
. docker/engine.sh

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(runtime runtime-slim rdma dev)

t0=$SECONDS
terse_engine_setup
terse_base_image
terse_log "engine $ENGINE, base $BASE ready after $((SECONDS - t0)) s"

version=$(sed -n 's/^project(terse VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
    revision+=-dirty
fi
args=(-f docker/Dockerfile --build-arg "BASE=$BASE" --build-arg "TERSE_VERSION=$version"
      --build-arg "TERSE_REVISION=$revision")
if [ "$ENGINE" = podman ]; then
    # apt in the build reaches the mirror the way this machine does (its /etc/hosts, proxies).
    args+=(--network host --layers)
fi

for t in "${targets[@]}"; do
    s=$SECONDS
    terse_log "building terse:$t"
    log=$(mktemp /tmp/terse-build-$t.XXXXXX.log)
    if ! $ENGINE build "${args[@]}" --target "$t" -t "terse:$t" . >"$log" 2>&1; then
        tail -40 "$log" >&2
        terse_log "building terse:$t failed (full log: $log)"
        exit 1
    fi
    rm -f "$log"
    size=$($ENGINE image inspect --format '{{.Size}}' "terse:$t")
    terse_log "terse:$t built in $((SECONDS - s)) s, $((size / 1000000)) MB"
done
terse_log "all built in $((SECONDS - t0)) s (version $version, revision $revision)"
