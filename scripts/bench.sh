#!/usr/bin/env bash
# make bench: the same workloads against real etcd and metastore, one after the other on
# this machine, with `metastore bench` as the client for both; prints the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${METASTORE_BIN:-target/release/metastore}
ETCD=${ETCD_BIN:-$(command -v etcd)}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # kind -> prints endpoint; server pid in $WORK/pid
  local kind=$1 cport pport bin
  cport=$(free_port); pport=$(free_port)
  if [ "$kind" = etcd ]; then bin=$ETCD; else bin=$BIN; fi
  "$bin" --name default --data-dir "$WORK/$kind.data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "default=http://127.0.0.1:$pport" >"$WORK/$kind.log" 2>&1 &
  echo $! >"$WORK/pid"
  for _ in $(seq 1 200); do
    grep -q "ready to serve client requests" "$WORK/$kind.log" && break
    sleep 0.05
  done
  echo "http://127.0.0.1:$cport"
}

WORKLOADS=(
  "put --conns 1 --clients 1 --total ${BENCH_SMALL:-3000} --key-size 8 --val-size 256"
  "put --conns 100 --clients 1000 --total ${BENCH_LARGE:-100000} --key-size 8 --val-size 256 --key-space-size 100000"
  "range foo --conns 10 --clients 100 --total ${BENCH_LARGE:-100000} --consistency l"
  "range foo --conns 10 --clients 100 --total ${BENCH_LARGE:-100000} --consistency s"
  "keepalive --conns 10 --clients 100 --total ${BENCH_LARGE:-100000} --mode stream"
  "keepalive --conns 10 --clients 100 --total ${BENCH_SMALL:-3000}0 --mode new"
)

declare -A RPS P99 AVG WATCH RSS
for kind in etcd metastore; do
  ep=$(start $kind)
  "$BIN" bench put --endpoints "$ep" --total 1 --key-size 3 --val-size 3 >/dev/null # creates key "foo"-sized entry
  for i in "${!WORKLOADS[@]}"; do
    line=$("$BIN" bench ${WORKLOADS[$i]} --endpoints "$ep" --label "$kind" | grep '^RESULT')
    echo "$line"
    RPS[$kind,$i]=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
    P99[$kind,$i]=$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$line")
    AVG[$kind,$i]=$(sed -E 's/.* avg_ms=([0-9.]+).*/\1/' <<<"$line")
    # The server's resident memory after the put workloads (a retained-buffer leak shows
    # here long before it shows in a rate).
    if [ "$i" = 1 ]; then RSS[$kind]=$(ps -o rss= -p "$(cat "$WORK/pid")" | tr -d ' '); fi
  done
  line=$("$BIN" bench watch --endpoints "$ep" --streams ${BENCH_STREAMS:-1000} --watchers ${BENCH_WATCHERS:-100000} \
    --puts 1000 --server-pid "$(cat "$WORK/pid")" --label "$kind" | grep '^RESULT')
  echo "$line"
  WATCH[$kind]=$line
  kill "$(cat "$WORK/pid")"; wait "$(cat "$WORK/pid")" 2>/dev/null || true
  echo "$kind: db dir $(du -sh "$WORK/$kind.data" | cut -f1)"
done

echo
printf '%-75s %12s %12s %9s %11s %11s\n' workload etcd_rps ms_rps rps_x etcd_p99ms ms_p99ms
for i in "${!WORKLOADS[@]}"; do
  e=${RPS[etcd,$i]}; m=${RPS[metastore,$i]}
  printf '%-75s %12s %12s %9s %11s %11s\n' "${WORKLOADS[$i]}" "$e" "$m" \
    "$(python3 -c "print(f'{$m/$e:.2f}x')")" "${P99[etcd,$i]}" "${P99[metastore,$i]}"
done

echo
printf '%-75s %12s %12s %9s\n' "server RSS after the puts (KiB)" "${RSS[etcd]}" "${RSS[metastore]}" \
  "$(python3 -c "print(f'{${RSS[metastore]}/${RSS[etcd]}:.2f}x')")"

echo
field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$2"; }
printf '%-40s %12s %12s %9s\n' watch etcd metastore ratio
for f in setup_s p50_ms p99_ms bytes_per_watcher; do
  e=$(field $f "${WATCH[etcd]}"); m=$(field $f "${WATCH[metastore]}")
  printf '%-40s %12s %12s %9s\n' "$f" "$e" "$m" "$(python3 -c "print(f'{$m/$e:.2f}x')")"
done
