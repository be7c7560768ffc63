//! What a run records: each client call with its invocation and return times and its
//! result, and everything the watcher received.

/// Nanoseconds since the run started.
pub type Time = u64;

#[derive(Debug, Clone)]
pub enum Req {
    Put {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// If `key`'s mod revision is `expect_mod` (0: absent), put `value`; else get `key`.
    Txn {
        key: String,
        expect_mod: i64,
        value: String,
    },
    Get {
        key: String,
        serializable: bool,
    },
    /// A Kubernetes Event: `value` put at a fresh `key` under `lease` (a short TTL lease
    /// the client shares between its events for a while, as kube-apiserver does), which
    /// deletes it when it expires.
    Event {
        key: String,
        value: String,
        lease: i64,
    },
    /// Every key under `prefix`, read in pages of a few keys at the first page's
    /// revision, as a paginated Kubernetes list.
    List {
        prefix: String,
    },
}

impl Req {
    pub fn key(&self) -> &str {
        match self {
            Req::Put { key, .. }
            | Req::Delete { key }
            | Req::Txn { key, .. }
            | Req::Get { key, .. }
            | Req::Event { key, .. } => key,
            Req::List { prefix } => prefix,
        }
    }

    /// The value a write puts, if it puts one (values are unique in a run).
    pub fn value(&self) -> Option<&str> {
        match self {
            Req::Put { value, .. } | Req::Txn { value, .. } | Req::Event { value, .. } => {
                Some(value)
            }
            _ => None,
        }
    }
}

/// A key's value and mod revision as a read saw it.
pub type Seen = Option<(String, i64)>;

#[derive(Debug, Clone)]
pub enum Resp {
    Put {
        rev: i64,
    },
    Delete {
        rev: i64,
        deleted: i64,
    },
    Txn {
        rev: i64,
        succeeded: bool,
        got: Seen,
    },
    Get {
        rev: i64,
        got: Seen,
    },
    /// A list's revision and its keys with their values and mod revisions, in key order.
    List {
        rev: i64,
        kvs: Vec<(String, String, i64)>,
    },
    /// Failed or timed out: it may or may not have taken effect.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub client: usize,
    pub req: Req,
    pub invoke: Time,
    pub ret: Time,
    pub resp: Resp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    pub rev: i64,
    pub key: String,
    /// `None` for a delete.
    pub value: Option<String>,
    pub create_rev: i64,
    pub version: i64,
    /// The previous value and mod revision (`prev_kv`).
    pub prev: Seen,
}

#[derive(Debug, Clone)]
pub struct WatchResp {
    /// The response header's revision.
    pub rev: i64,
    pub events: Vec<Ev>,
    pub created: bool,
    pub canceled: bool,
    pub compact_rev: i64,
    /// Which connection of the watcher it came on (a reconnect starts a new one).
    pub stream: usize,
}

impl WatchResp {
    /// A progress notification: no events, not a create or a cancel.
    pub fn is_progress(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled
    }
}

/// One list-then-watch of a Kubernetes reflector: a list at `list_rev`, then a watch
/// from `list_rev + 1` until it failed or was canceled (then it lists again).
#[derive(Debug, Clone, Default)]
pub struct Reflection {
    pub list_rev: i64,
    pub list: Vec<(String, String, i64)>,
    /// Event responses and progress notifications, in the order received.
    pub watch: Vec<WatchResp>,
}
