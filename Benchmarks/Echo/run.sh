#!/usr/bin/env bash
# WebSocket echo speed: Sockway's raw /websocket against ws (Node) and Hummingbird WebSocket.
# Everything runs on 127.0.0.1 and every load is bounded in time. See README.md.
#
#   Benchmarks/Echo/run.sh                  # all servers, all 8 configurations
#   SERVERS="sockway ws" DURATION=10 Benchmarks/Echo/run.sh
#
# Environment:
#   SERVERS      servers to measure, in order (default: "sockway ws hummingbird")
#   CONNS        connection counts (default: "100 1000")
#   SIZES        message sizes in bytes (default: "20 1024")
#   INFLIGHT     messages in flight per connection (default: "1 8")
#   DURATION     measured seconds per configuration (default: 5)
#   WARMUP       warmup seconds before each measurement (default: 2)
#   THREADS      Sockway's --threads (default: 2)
#   SKIP_BUILD   1: use the existing builds
#   OUT          where results go (default: $SCRATCH/results.txt, table in $SCRATCH/results.md)
#   SCRATCH      build and log folder (default: /work/scratch/echo-bench)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SCRATCH="${SCRATCH:-/work/scratch/echo-bench}"
SERVERS="${SERVERS:-sockway ws hummingbird}"
CONNS="${CONNS:-100 1000}"
SIZES="${SIZES:-20 1024}"
INFLIGHT="${INFLIGHT:-1 8}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-2}"
THREADS="${THREADS:-2}"
OUT="${OUT:-$SCRATCH/results.txt}"
mkdir -p "$SCRATCH"

SOCKWAY_BUILD="$SCRATCH/.build-sockway"
HB_BUILD="$SCRATCH/.build-hummingbird"
LOADGEN="$SCRATCH/loadgen"

log() { echo "[echo-bench] $*" >&2; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- build ----------------------------------------------------------------------------------
cc -O2 -Wall -o "$LOADGEN" "$HERE/loadgen.c"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  for s in $SERVERS; do
    case "$s" in
      sockway)
        log "building sockway (release)"
        (cd "$ROOT" && swift build -c release --product sockway --scratch-path "$SOCKWAY_BUILD") >"$SCRATCH/build-sockway.log" 2>&1 \
          || { tail -30 "$SCRATCH/build-sockway.log"; exit 1; } ;;
      ws)
        if [[ ! -d /usr/share/nodejs/ws ]]; then
          log "installing Debian's node-ws"
          apt-get update >/dev/null && apt-get install -y node-ws >/dev/null
        fi ;;
      hummingbird)
        log "building HummingbirdEcho (release; several minutes the first time)"
        (cd "$HERE/HummingbirdEcho" && swift build -c release --scratch-path "$HB_BUILD") >"$SCRATCH/build-hummingbird.log" 2>&1 \
          || { tail -30 "$SCRATCH/build-hummingbird.log"; exit 1; } ;;
      *) echo "unknown server $s" >&2; exit 2 ;;
    esac
  done
fi

# ---- servers --------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SERVER_PID=""
start_server() { # name port
  local name="$1" port="$2"
  case "$name" in
    sockway)
      "$SOCKWAY_BUILD/release/sockway" serve --host 127.0.0.1 --port "$port" --compression none --threads "$THREADS" --max-sessions-per-address 0 \
        >"$SCRATCH/server-$name.log" 2>&1 &
      SERVER_PID=$! ;;
    ws)
      NODE_PATH=/usr/share/nodejs node "$HERE/ws-echo.js" "$port" >"$SCRATCH/server-$name.log" 2>&1 &
      SERVER_PID=$! ;;
    hummingbird)
      "$HB_BUILD/release/HummingbirdEcho" "$port" >"$SCRATCH/server-$name.log" 2>&1 &
      SERVER_PID=$! ;;
  esac
  for _ in $(seq 1 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then log "$name exited:"; cat "$SCRATCH/server-$name.log" >&2; exit 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$name did not accept on port $port"; kill "$SERVER_PID"; exit 1
}

stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT

# ---- measure --------------------------------------------------------------------------------
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }

: >"$OUT"
log "load $(cut -d' ' -f1-3 /proc/loadavg) before the run; ${DURATION}s measured after ${WARMUP}s warmup per configuration"
for s in $SERVERS; do
  port="$(free_port)"
  start_server "$s" "$port"
  log "$s (pid $SERVER_PID) on 127.0.0.1:$port"
  for c in $CONNS; do
    for m in $SIZES; do
      for k in $INFLIGHT; do
        # The load generator samples the server's /proc/PID/stat (utime+stime) at the edges of
        # its measured window, after the warmup.
        line="$(timeout $((DURATION + WARMUP + 90)) "$LOADGEN" 127.0.0.1 "$port" /echo/websocket "$c" "$m" "$k" \
                  "$DURATION" "$WARMUP" "$SERVER_PID" 2>"$SCRATCH/loadgen-stderr.log")" \
          || { log "$s c=$c m=$m k=$k failed: $(tail -3 "$SCRATCH/loadgen-stderr.log")"; line="msgs=0 failed=1"; }
        echo "server=$s conns=$c size=$m inflight=$k $line" | tee -a "$OUT" >&2
        sleep 1 # let the closed connections drain
      done
    done
  done
  stop_server
done

# ---- table ----------------------------------------------------------------------------------
python3 - "$OUT" "$SERVERS" <<'EOF' | tee "${OUT%.txt}.md"
import sys
rows = [dict(kv.split("=", 1) for kv in line.split()) for line in open(sys.argv[1]) if line.strip()]
servers = sys.argv[2].split()
names = {"sockway": "Sockway", "ws": "ws (Node)", "hummingbird": "Hummingbird WS"}
def rate(r): return float(r.get("msgs_per_sec", 0) or 0)
configs = []
for r in rows:
    key = (int(r["conns"]), int(r["size"]), int(r["inflight"]))
    if key not in configs: configs.append(key)
by = {(r["server"], int(r["conns"]), int(r["size"]), int(r["inflight"])): r for r in rows}
print("| server | connections | size | in flight | msgs/s | server CPU µs/msg | server CPU % (user) | loadgen CPU % |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for key in configs:
    for s in servers:
        r = by.get((s,) + key)
        if not r: continue
        if r.get("failed"):
            print(f"| {names.get(s, s)} | {key[0]} | {key[1]} B | {key[2]} | failed | | | |"); continue
        print(f"| {names.get(s, s)} | {key[0]} | {key[1]} B | {key[2]} | {rate(r):,.0f} | {float(r['server_cpu_us_per_msg']):.2f} "
              f"| {float(r['server_cpu_pct']):.0f} ({float(r.get('server_user_pct', 'nan')):.0f}) | {float(r['client_cpu_pct']):.0f} |")
others = [s for s in ("ws", "hummingbird") if s in servers]
if "sockway" in servers and others:
    print()
    print("| connections | size | in flight | " + " | ".join(f"Sockway/{names[o]} msgs/s" for o in others)
          + " | " + " | ".join(f"Sockway/{names[o]} CPU/msg" for o in others) + " |")
    print("|---:|---:|---:|" + "---:|" * (2 * len(others)))
    for key in configs:
        sw = by.get(("sockway",) + key)
        cells, cpu = [], []
        for o in others:
            r = by.get((o,) + key)
            ok = sw and r and rate(sw) > 0 and rate(r) > 0
            cells.append(f"{rate(sw) / rate(r):.2f}" if ok else "–")
            cpu.append(f"{float(sw['server_cpu_us_per_msg']) / float(r['server_cpu_us_per_msg']):.2f}"
                       if ok and float(r['server_cpu_us_per_msg']) > 0 else "–")
        print(f"| {key[0]} | {key[1]} B | {key[2]} | " + " | ".join(cells) + " | " + " | ".join(cpu) + " |")
EOF
log "raw lines in $OUT; table in ${OUT%.txt}.md"
