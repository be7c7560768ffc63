#!/usr/bin/env bash
# Fails when a lower layer imports an upper one (see ARCHITECTURE.md and src/lib.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check() { # layer, forbidden upper layers...
  local layer=$1; shift
  for upper in "$@"; do
    if grep -rnE "(use |crate::)crate::$upper\b|crate::$upper::" "src/$layer" 2>/dev/null | grep -v '^\s*//' ; then
      echo "layering: src/$layer must not import crate::$upper"; fail=1
    fi
  done
}
check storage api server raft apply mvcc lease membership alarm embed meta config
check lease api server raft apply mvcc membership alarm embed meta config
check snapshot api server raft embed meta config
check membership api server raft apply mvcc lease alarm embed meta config
check alarm api server raft apply mvcc lease membership embed meta config
check auth api server raft apply mvcc lease membership alarm embed meta config
check mvcc api server raft apply lease membership alarm embed meta config
check apply api server raft embed meta config
check raft api server embed meta config
check server api embed meta
check api raft apply mvcc storage lease membership alarm auth
# Inside the client port: etcd's services and our product's paths know nothing of each other.
check api/v3rpc api::metahttp api::etcdhttp meta
check api/etcdhttp api::metahttp api::v3rpc meta
check api/metahttp api::v3rpc api::etcdhttp server
check meta api server raft apply mvcc storage lease auth embed
# Leaves: the proto bindings, the log line format, the error messages, the failpoints, the
# metrics and TLS import nothing of the crate but the proto bindings and the error messages.
leaf() {
  local file=$1
  if grep -nE "crate::[a-z_]+" "src/$file" 2>/dev/null | grep -v '^\s*//' | grep -vE "crate::(proto|rpctypes)\b" ; then
    echo "layering: src/$file is a leaf and must import only proto and rpctypes"; fail=1
  fi
}
for f in logline.rs failpoint.rs metrics.rs rpctypes.rs proto.rs tls; do leaf "$f"; done
# etcd's flags describe the ports' TLS and the log lines, so config may name the tls and
# logline leaves too.
if grep -rnE "crate::[a-z_]+" src/config.rs src/config/ | grep -v '^\s*//' | grep -vE "crate::(proto|rpctypes|tls|logline)\b" ; then
  echo "layering: src/config is a leaf and must import only proto, rpctypes, tls and logline"; fail=1
fi
exit $fail
