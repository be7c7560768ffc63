#!/usr/bin/env bash
# make bench: the same workloads against real etcd and metastore, one after the other on
# this machine, with `metastore bench` as the client for both; prints the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${METASTORE_BIN:-target/release/metastore}
ETCD=${ETCD_BIN:-$(command -v etcd)}
ETCDCTL=${ETCDCTL_BIN:-$(command -v etcdctl)}
# etcdctl warns about any ETCDCTL_* variable it does not know, ETCDCTL_BIN among them.
ctl() { env -u ETCDCTL_BIN ETCDCTL_API=3 "$ETCDCTL" "$@"; }
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # kind [data dir] [client port] -> prints endpoint; server pid in $WORK/pid
  local kind=$1 data=${2:-$WORK/$1.data} cport=${3:-$(free_port)} pport bin
  pport=$(free_port)
  if [ "$kind" = etcd ]; then bin=$ETCD; else bin=$BIN; fi
  "$bin" --name default --data-dir "$data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "default=http://127.0.0.1:$pport" >>"$WORK/$kind.log" 2>&1 &
  echo $! >"$WORK/pid"
  for _ in $(seq 1 200); do
    grep -q "ready to serve client requests" "$WORK/$kind.log" && break
    sleep 0.05
  done
  echo "http://127.0.0.1:$cport"
}

# Seconds from a restart until /health answers true.
healthy_after() { # kind data port
  local t0 ep
  t0=$(date +%s.%N)
  : >"$WORK/$1.log"
  ep=$(start "$1" "$2" "$3")
  for _ in $(seq 1 6000); do
    curl -fs "$ep/health" 2>/dev/null | grep -q '"health":"true"' && break
    sleep 0.02
  done
  python3 -c "import time; print(f'{time.time() - $t0:.2f}')"
}

ratio() { python3 -c "print(f'{$2/$1:.2f}x' if $1 else '-')"; }

WORKLOADS=(
  "put --conns 1 --clients 1 --total ${BENCH_SMALL:-3000} --key-size 8 --val-size 256"
  "put --conns 100 --clients 1000 --total ${BENCH_LARGE:-100000} --key-size 8 --val-size 256 --key-space-size 100000"
  "put --conns 10 --clients 100 --total ${BENCH_LARGE:-100000} --key-size 8 --val-size 256 --key-space-size 100000"
  "range foo --conns 10 --clients 100 --total ${BENCH_LARGE:-100000} --consistency l"
  "range foo --conns 10 --clients 100 --total ${BENCH_LARGE:-100000} --consistency s"
  "keepalive --conns 10 --clients 100 --total ${BENCH_LARGE:-100000} --mode stream"
  "keepalive --conns 10 --clients 100 --total ${BENCH_SMALL:-3000}0 --mode new"
)

# the last put workload: the server's memory is read after it
LAST_PUT=2
MILLION=${BENCH_MILLION:-1000000}

declare -A RPS P50 P99 AVG WATCH RSS DIR CDIR DDIR MRSS MDIR MREST
for kind in etcd metastore; do
  # Each server starts on a quiet disk: the writeback of the other's million keys (and
  # their removal) would otherwise land in the first workload's fsyncs.
  sync
  ep=$(start $kind)
  "$BIN" bench put --endpoints "$ep" --total 1 --key-size 3 --val-size 3 >/dev/null # creates key "foo"-sized entry
  for i in "${!WORKLOADS[@]}"; do
    line=$("$BIN" bench ${WORKLOADS[$i]} --endpoints "$ep" --label "$kind" | grep '^RESULT')
    echo "$line"
    RPS[$kind,$i]=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
    P50[$kind,$i]=$(sed -E 's/.* p50_ms=([0-9.]+).*/\1/' <<<"$line")
    P99[$kind,$i]=$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$line")
    AVG[$kind,$i]=$(sed -E 's/.* avg_ms=([0-9.]+).*/\1/' <<<"$line")
    # The server's resident memory after the put workloads (a retained-buffer leak shows
    # here long before it shows in a rate).
    if [ "$i" = $LAST_PUT ]; then
      RSS[$kind]=$(ps -o rss= -p "$(cat "$WORK/pid")" | tr -d ' ')
      DIR[$kind]=$(du -sk "$WORK/$kind.data" | cut -f1)
    fi
  done
  line=$("$BIN" bench watch --endpoints "$ep" --streams ${BENCH_STREAMS:-1000} --watchers ${BENCH_WATCHERS:-100000} \
    --puts 1000 --server-pid "$(cat "$WORK/pid")" --label "$kind" | grep '^RESULT')
  echo "$line"
  WATCH[$kind]=$line
  # Last (it changes what the workloads above would meet): the space after a compaction of
  # every old revision, and after a defragment.
  rev=$(ctl --endpoints "$ep" endpoint status -w json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
  ctl --endpoints "$ep" compact "$rev" --physical >/dev/null
  CDIR[$kind]=$(du -sk "$WORK/$kind.data" | cut -f1)
  ctl --endpoints "$ep" defrag >/dev/null 2>&1
  DDIR[$kind]=$(du -sk "$WORK/$kind.data" | cut -f1)
  kill "$(cat "$WORK/pid")"; wait "$(cat "$WORK/pid")" 2>/dev/null || true
  echo "$kind: db dir $(du -sh "$WORK/$kind.data" | cut -f1)"

  # A million keys (16-byte keys, 64-byte values) on a fresh server: memory, data
  # directory, and a restart after kill -9 until healthy.
  if [ "$MILLION" != 0 ]; then
    port=$(free_port)
    : >"$WORK/$kind.log"
    ep=$(start $kind "$WORK/$kind.million" "$port")
    "$BIN" bench put --endpoints "$ep" --conns 100 --clients 1000 --total "$MILLION" --key-size 16 \
      --val-size 64 --sequential-keys --key-space-size "$MILLION" --label "$kind" | grep '^RESULT'
    MRSS[$kind]=$(ps -o rss= -p "$(cat "$WORK/pid")" | tr -d ' ')
    MDIR[$kind]=$(du -sk "$WORK/$kind.million" | cut -f1)
    kill -9 "$(cat "$WORK/pid")"; wait "$(cat "$WORK/pid")" 2>/dev/null || true
    MREST[$kind]=$(healthy_after $kind "$WORK/$kind.million" "$port")
    kill "$(cat "$WORK/pid")"; wait "$(cat "$WORK/pid")" 2>/dev/null || true
    rm -rf "$WORK/$kind.million"
  fi
done

echo
printf '%-75s %10s %10s %7s %9s %9s %7s %9s %9s %7s\n' workload etcd_rps ms_rps rps_x \
  etcd_p50 ms_p50 p50_x etcd_p99 ms_p99 p99_x
for i in "${!WORKLOADS[@]}"; do
  printf '%-75s %10s %10s %7s %9s %9s %7s %9s %9s %7s\n' "${WORKLOADS[$i]}" \
    "${RPS[etcd,$i]}" "${RPS[metastore,$i]}" "$(ratio "${RPS[etcd,$i]}" "${RPS[metastore,$i]}")" \
    "${P50[etcd,$i]}" "${P50[metastore,$i]}" "$(ratio "${P50[etcd,$i]}" "${P50[metastore,$i]}")" \
    "${P99[etcd,$i]}" "${P99[metastore,$i]}" "$(ratio "${P99[etcd,$i]}" "${P99[metastore,$i]}")"
done

echo
printf '%-75s %12s %12s %9s\n' "" etcd metastore ratio
row() { printf '%-75s %12s %12s %9s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
row "server RSS after the put workloads (KiB)" "${RSS[etcd]}" "${RSS[metastore]}"
row "data directory after the put workloads (KiB)" "${DIR[etcd]}" "${DIR[metastore]}"
row "data directory at the end, after compacting every old revision (KiB)" "${CDIR[etcd]}" "${CDIR[metastore]}"
row "data directory at the end, after the compaction and a defragment (KiB)" "${DDIR[etcd]}" "${DDIR[metastore]}"
if [ "$MILLION" != 0 ]; then
  row "$MILLION keys: server RSS (KiB)" "${MRSS[etcd]}" "${MRSS[metastore]}"
  row "$MILLION keys: data directory (KiB)" "${MDIR[etcd]}" "${MDIR[metastore]}"
  row "$MILLION keys: kill -9, restart until healthy (s)" "${MREST[etcd]}" "${MREST[metastore]}"
fi

echo
field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$2"; }
printf '%-40s %12s %12s %9s\n' watch etcd metastore ratio
for f in setup_s p50_ms p99_ms bytes_per_watcher; do
  e=$(field $f "${WATCH[etcd]}"); m=$(field $f "${WATCH[metastore]}")
  printf '%-40s %12s %12s %9s\n' "$f" "$e" "$m" "$(python3 -c "print(f'{$m/$e:.2f}x')")"
done
