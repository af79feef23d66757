#!/bin/bash
# Benign requests of another site for the detector's calibration (`comb anomaly train|calibrate
# --site-benign FILE`) and for judging it there (`comb anomaly eval --ood ... --site-benign
# FILE`): Nectar's traffic generator drives a real Nectar server (a `comb node` on loopback,
# `comb nectar serve` capturing every request) with benign browser sessions only; the raw
# requests the capture stored (httplog_request, spooled to the node's SQLite store) whose
# trace id the truth file calls benign are written one after another to OUT, as
# `comb anomaly score` reads them.
#
# usage: apps/anomaly/site_benign.sh OUT [SECONDS [RATE [SEED]]]   (defaults 60 s, 40/s, 7)
# Needs build/comb and python3. Writes its node data under a temporary folder, removed at
# the end.
set -euo pipefail
out=${1:?usage: site_benign.sh OUT [SECONDS [RATE [SEED]]]}
secs=${2:-60}
rate=${3:-40}
seed=${4:-7}
root=$(cd "$(dirname "$0")/../.." && pwd)
comb=${COMB:-$root/build/comb}
work=$(mktemp -d)
node_pid=""
serve_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { # FILE TEXT: up to 60 s
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "site_benign: '$2' never appeared in $1:" >&2; cat "$1" >&2; return 1
}

node_port=$(free_port)
"$comb" node --data "$work/node" --listen "127.0.0.1:$node_port" --durability async \
  >"$work/node.log" 2>&1 &
node_pid=$!
wait_line "$work/node.log" "listening on"
site_port=$(free_port)
"$comb" nectar serve --node "127.0.0.1:$node_port" --listen "127.0.0.1:$site_port" \
  --no-labels --no-rules >"$work/serve.log" 2>&1 &
serve_pid=$!
wait_line "$work/serve.log" "serving http"
"$comb" nectar traffic --target "127.0.0.1:$site_port" --rate "$rate" --duration "$secs" \
  --attack-share 0 --seed "$seed" --truth "$work/truth.jsonl" >&2
# The capture writes in batches: give the last one time to reach the store.
sent=$(wc -l <"$work/truth.jsonl")
for _ in $(seq 100); do
  have=$("$comb" prov query --sql "$work/node/provenance.sqlite" \
    "SELECT count(*) AS n FROM row_events WHERE table_name = 'httplog_request'" 2>/dev/null |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["n"])' 2>/dev/null || echo 0)
  [ "$have" -ge "$sent" ] && break
  sleep 0.2
done
"$comb" prov query --sql "$work/node/provenance.sqlite" \
  "SELECT value FROM row_events WHERE table_name = 'httplog_request' ORDER BY ts_ns" \
  >"$work/rows.jsonl"
python3 - "$work/rows.jsonl" "$work/truth.jsonl" "$out" <<'EOF'
import base64, json, sys
rows, truth, out = sys.argv[1:4]
benign = set()
for line in open(truth, encoding="utf-8"):
    t = json.loads(line)
    if t.get("class", t.get("cls")) == "benign":
        benign.add(t["trace_id"])
n = skipped = 0
with open(out, "wb") as f:
    for line in open(rows, encoding="utf-8"):
        row = json.loads(json.loads(line)["value"])
        if row.get("trace_id") not in benign or row.get("truncated"):
            skipped += 1
            continue
        raw = row["raw"]
        data = base64.b64decode(raw) if row.get("raw_encoding") == "base64" else raw.encode("utf-8")
        f.write(data if data.endswith(b"\r\n") else data + b"\r\n")
        n += 1
print(f"site_benign: {n} benign requests written to {out} ({skipped} rows skipped)", file=sys.stderr)
EOF
