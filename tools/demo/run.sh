#!/usr/bin/env bash
# make demo: fakeapi (a few trunks) + fakerequester (scripted answers) + the registry,
# all on 127.0.0.1; shows registrations as they happen. Ctrl-C stops everything.
# DEMO_SECONDS=N stops after N seconds; DEMO_HTTP_ADDR / DEMO_CONTROL_ADDR move the
# registry's listeners (default 127.0.0.1:8080 and 127.0.0.1:51910).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-$PWD/bin}
HTTP_ADDR=${DEMO_HTTP_ADDR:-127.0.0.1:8080}
CONTROL_ADDR=${DEMO_CONTROL_ADDR:-127.0.0.1:51910}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

listen_addr() { # wait for "<name> listening on <addr>" in a log file
  for _ in $(seq 1 200); do
    if a=$(grep -m1 -o 'listening on .*' "$1" 2>/dev/null); then echo "${a#listening on }"; return 0; fi
    sleep 0.05
  done
  echo "no listening line in $1" >&2; cat "$1" >&2; return 1
}

"$BIN/fakeapi" --listen 127.0.0.1:0 --fixture tools/demo/trunks.yaml >"$work/fakeapi.log" 2>&1 & pids+=($!)
"$BIN/fakerequester" --listen 127.0.0.1:0 --script tools/demo/script.yaml >"$work/fakerequester.log" 2>&1 & pids+=($!)
api=$(listen_addr "$work/fakeapi.log")
req=$(listen_addr "$work/fakerequester.log")
sed -e "s/REQUESTER_ADDR/$req/; s/API_ADDR/$api/; s/HTTP_ADDR/$HTTP_ADDR/; s/CONTROL_ADDR/$CONTROL_ADDR/" \
  tools/demo/registry.yaml >"$work/registry.yaml"

cat <<INFO
fakeapi        $api   (trunks: tools/demo/trunks.yaml)
fakerequester  $req   (answers: tools/demo/script.yaml)
registry       http://$HTTP_ADDR/healthz  http://$HTTP_ADDR/metrics  control API $CONTROL_ADDR
               config: $work/registry.yaml
Registrations as they happen (Ctrl-C to stop):
INFO
LOGS_LEVEL=${LOGS_LEVEL:-info} "$BIN/registry" --config "$work/registry.yaml" 2>&1 | tee "$work/registry.log" &
pids+=($!)
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
else
  wait
fi
