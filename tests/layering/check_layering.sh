#!/bin/sh
# Layering rules grep can check (docs/ARCHITECTURE.md): UCX stays inside src/transport, and
# src/ef sees coll only through coll/coll.h. Usage: check_layering.sh SOURCE_DIR transport|ef
# Prints every offending line and fails when there is one.
src=$1
case $2 in
transport)
    # UCX headers and ucp_/ucs_/uct_ names (UCS_OK, ucp_tag_t, ...) anywhere but src/transport
    hits=$(grep -rnE '(^|[^A-Za-z0-9_])(ucp|ucs|uct|UCP|UCS|UCT)_|<(ucp|ucs|uct)/' \
        --include='*.c' --include='*.h' --include='*.cpp' --include='*.hpp' \
        "$src/src" "$src/include" "$src/tests" "$src/perf" "$src/tools" "$src/bindings" \
        "$src/examples" 2>/dev/null | grep -v "^$src/src/transport/")
    # the private header's users are the transport's own files
    priv=$(grep -rln 'ucx_priv\.h' --include='*.c' --include='*.h' --include='*.cpp' "$src" \
        2>/dev/null | grep -v "^$src/src/transport/" | grep -v "^$src/build")
    hits="$hits$priv"
    ;;
ef)
    hits=$(grep -rnE '#include +"(coll/)?(comm|engine|xfer|abort|scratch|algos)\.h"' "$src/src/ef")
    ;;
*)
    echo "usage: $0 SOURCE_DIR transport|ef" >&2
    exit 2
    ;;
esac
if [ -n "$hits" ]; then
    echo "layering ($2) broken here:"
    echo "$hits"
    exit 1
fi
echo "layering ($2): ok"
