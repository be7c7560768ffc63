//! Resource groups (to be written).

/// What a writer of resource-group metadata may change (the resource manager's roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteRole {
    /// Settings and token state (a single resource manager).
    #[default]
    LegacyAll,
    /// Settings only (the metadata service).
    MetaOnly,
    /// Token state only (the token service).
    TokenOnly,
}

impl std::str::FromStr for WriteRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "LegacyAll" | "legacy-all" => Ok(WriteRole::LegacyAll),
            "MetaOnly" | "meta-only" => Ok(WriteRole::MetaOnly),
            "TokenOnly" | "token-only" => Ok(WriteRole::TokenOnly),
            other => Err(format!(
                "unknown write role {other:?} (LegacyAll, MetaOnly or TokenOnly)"
            )),
        }
    }
}
