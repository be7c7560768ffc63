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
check storage api server raft apply mvcc embed meta
check mvcc api server raft apply embed meta
check apply api server raft embed meta
check raft api server embed meta
check server api embed meta
check api raft apply mvcc storage
check meta api server raft apply mvcc storage lease embed
exit $fail
