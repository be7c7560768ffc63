#!/usr/bin/env bash
# make bench-cluster: a 3-member etcd and a 3-member metastore on this machine's loopback,
# one after the other, the same workloads with `metastore bench` as the client for both:
# puts at 100 connections/1,000 clients (connections spread over the members), puts at 1/1
# on the leader, linearizable ranges on a follower, and leader failover (kill -9 of the
# leader to the first acknowledged write, FAILOVERS times, the killed member restarted
# between kills). Prints the ratios (metastore / etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${METASTORE_BIN:-target/release/metastore}
ETCD=${ETCD_BIN:-$(command -v etcd)}
ETCDCTL=${ETCDCTL_BIN:-$(command -v etcdctl)}
FAILOVERS=${FAILOVERS:-10}
WORK=$(mktemp -d)
trap 'kill -9 $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] && echo "kept $WORK" || rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A CPORT PPORT
member_start() { # kind n
  local kind=$1 n=$2 bin cluster=""
  if [ "$kind" = etcd ]; then bin=$ETCD; else bin=$BIN; fi
  for m in 0 1 2; do cluster+="${cluster:+,}m$m=http://127.0.0.1:${PPORT[$kind,$m]}"; done
  # Started from a subshell, so that this shell reports no kill -9 of its own jobs.
  (ETCD_UNSUPPORTED_ARCH=$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/') \
  "$bin" --name "m$n" --data-dir "$WORK/$kind.$n" \
    --listen-client-urls "http://127.0.0.1:${CPORT[$kind,$n]}" \
    --advertise-client-urls "http://127.0.0.1:${CPORT[$kind,$n]}" \
    --listen-peer-urls "http://127.0.0.1:${PPORT[$kind,$n]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$kind,$n]}" \
    --initial-cluster "$cluster" --initial-cluster-token "bench-$kind" \
    --initial-cluster-state new >>"$WORK/$kind.$n.log" 2>&1 &
  echo $! >"$WORK/$kind.$n.pid")
}

gone() { # pid: wait until the process has exited
  while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}

endpoints() { # kind [except n]
  local kind=$1 skip=${2:--1} out=""
  for m in 0 1 2; do [ "$m" = "$skip" ] || out+="${out:+,}http://127.0.0.1:${CPORT[$kind,$m]}"; done
  echo "$out"
}

healthy() { # kind: every member answers a linearizable read
  for _ in $(seq 1 600); do
    ETCDCTL_API=3 "$ETCDCTL" --endpoints "$(endpoints "$1")" --command-timeout=1s endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "cluster $1 not healthy" >&2; return 1
}

leader() { # kind -> index of the leader
  ETCDCTL_API=3 "$ETCDCTL" --endpoints "$(endpoints "$1")" endpoint status -w json 2>/dev/null | python3 -c '
import json,sys
st=json.load(sys.stdin)
for i,s in enumerate(st):
    if s["Status"]["header"]["member_id"]==s["Status"]["leader"]: print(i); break'
}

result() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$2"; }

declare -A R
for kind in ${KINDS:-etcd metastore}; do
  for n in 0 1 2; do CPORT[$kind,$n]=$(free_port); PPORT[$kind,$n]=$(free_port); done
  for n in 0 1 2; do member_start "$kind" "$n"; done
  healthy "$kind"
  l=$(leader "$kind"); f=$(( (l + 1) % 3 ))
  lep="http://127.0.0.1:${CPORT[$kind,$l]}"; fep="http://127.0.0.1:${CPORT[$kind,$f]}"
  "$BIN" bench put --endpoints "$lep" --total 1 --key-size 3 --val-size 3 >/dev/null
  R[$kind,p100]=$("$BIN" bench put --endpoints "$(endpoints "$kind")" --conns 100 --clients 1000 \
    --total "${BENCH_LARGE:-100000}" --key-size 8 --val-size 256 --key-space-size 100000 --label "$kind" | grep '^RESULT')
  echo "${R[$kind,p100]}"
  R[$kind,p1]=$("$BIN" bench put --endpoints "$lep" --conns 1 --clients 1 --total "${BENCH_SMALL:-3000}" \
    --key-size 8 --val-size 256 --label "$kind" | grep '^RESULT')
  echo "${R[$kind,p1]}"
  R[$kind,rf]=$("$BIN" bench range foo --endpoints "$fep" --conns 10 --clients 100 \
    --total "${BENCH_LARGE:-100000}" --consistency l --label "$kind" | grep '^RESULT')
  echo "${R[$kind,rf]}"
  times=()
  for k in $(seq 1 "$FAILOVERS"); do
    healthy "$kind"
    l=$(leader "$kind")
    since=$(date +%s%N)
    kill -9 "$(cat "$WORK/$kind.$l.pid")"
    line=$("$BIN" bench failover --endpoints "$(endpoints "$kind" "$l")" --since-ns "$since" --label "$kind" | grep '^RESULT')
    echo "kill $k of m$l: $line"
    times+=("$(result failover_ms "$line")")
    gone "$(cat "$WORK/$kind.$l.pid")"
    member_start "$kind" "$l"
  done
  R[$kind,fo]=RESULT\ $(printf '%s\n' "${times[@]}" | sort -n | python3 -c '
import sys; v=[float(x) for x in sys.stdin]; print(f"median_ms={v[len(v)//2] if len(v)%2 else (v[len(v)//2-1]+v[len(v)//2])/2:.1f} worst_ms={max(v):.1f}")')
  echo "$kind failover over $FAILOVERS kills: ${R[$kind,fo]}"
  for n in 0 1 2; do kill "$(cat "$WORK/$kind.$n.pid")" 2>/dev/null || true; done
  for n in 0 1 2; do gone "$(cat "$WORK/$kind.$n.pid")"; done
done

[ -n "${R[etcd,p100]:-}" ] && [ -n "${R[metastore,p100]:-}" ] || exit 0
echo
printf '%-44s %14s %14s %8s\n' "3 members" etcd metastore ratio
row() { # label key field
  local e m; e=$(result "$3" "${R[etcd,$2]}"); m=$(result "$3" "${R[metastore,$2]}")
  printf '%-44s %14s %14s %8s\n' "$1" "$e" "$m" "$(python3 -c "print(f'{$m/$e:.2f}x')")"
}
row "put 100 conns/1000 clients, rps" p100 rps
row "put 100/1000, p50 ms" p100 p50_ms
row "put 100/1000, p99 ms" p100 p99_ms
row "put 1/1 on the leader, rps" p1 rps
row "put 1/1, p50 ms" p1 p50_ms
row "put 1/1, p99 ms" p1 p99_ms
row "linearizable range on a follower, rps" rf rps
row "failover (kill -9 to first write), median ms" fo median_ms
row "failover, worst ms" fo worst_ms
