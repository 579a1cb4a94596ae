#!/usr/bin/env bash
# The main job on an embedded default: start a server on a temporary datastore, back up a
# directory (default: this repository's docs/ and sources), list the snapshots, restore,
# compare with the source, stop the server. Uses the release binaries (`make build`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
source_dir=$(realpath "${1:-.}")
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== init config and datastore in $work"
fingerprint=$($bin/backup-server init --config-dir "$work/config" | sed -n 's/^fingerprint: //p')
$bin/backup-server datastore create demo "$work/store" --config-dir "$work/config"

echo "== start server"
$bin/backup-server serve --config-dir "$work/config" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$work/server.out")
[ -n "$addr" ] || { cat "$work/server.log"; exit 1; }

export BACKUP_REPOSITORY="root@local!admin@$addr:demo"
export BACKUP_PASSWORD=$(cat "$work/config/admin.token")
export BACKUP_FINGERPRINT=$fingerprint

# A copy keeps the source still while it is read, so the comparison is exact.
echo "== back up $source_dir"
mkdir "$work/source"
tar -C "$source_dir" --exclude=./target -cf - . | tar -C "$work/source" -xf -
$bin/backup-client backup "root.tar:$work/source" --backup-id demo

echo "== back up again (unchanged: no new chunks)"
$bin/backup-client backup "root.tar:$work/source" --backup-id demo

echo "== snapshots"
$bin/backup-client snapshots
snapshot=$($bin/backup-client snapshots --output-format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["snapshot"])')

echo "== restore $snapshot"
$bin/backup-client restore "$snapshot" root.tar "$work/restore"

echo "== compare"
diff -r --no-dereference "$work/source" "$work/restore"
echo "demo ok: restored tree equals the source"
