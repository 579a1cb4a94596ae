#!/usr/bin/env bash
# The leaf crates must stay leaves: protocol and datastore depend on neither each other
# nor on the network stack or the applications (DESIGN.md, "Crates and their direction").
set -euo pipefail
fail=0
for crate in protocol datastore; do
    deps=$(cargo tree -p "$crate" -e normal --prefix none | awk '{print $1}' | sort -u)
    for forbidden in protocol datastore backup-server backup-client hyper h2 rustls tokio; do
        [ "$forbidden" = "$crate" ] && continue
        if grep -qx "$forbidden" <<<"$deps"; then
            echo "error: $crate depends on $forbidden" >&2
            fail=1
        fi
    done
done
exit $fail
