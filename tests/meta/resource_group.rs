//! Resource groups: the library API and the resource manager's HTTP paths.

use metastore::meta::resource_group::{
    Refusal, ResourceGroup, ResourceGroups, TokenState, WriteRole, NULL_KEYSPACE_ID,
};
use serde_json::json;

use crate::common::Kind;
use crate::{http, serve_meta_http, Env};

fn group(name: &str, fill_rate: u64) -> ResourceGroup {
    serde_json::from_value(json!({
        "name": name, "mode": 1, "priority": 8,
        "r_u_settings": {"r_u": {"settings": {"fill_rate": fill_rate, "burst_limit": -1}}}
    }))
    .unwrap()
}

fn fill_rate(g: &ResourceGroup) -> u64 {
    g.r_u_settings
        .as_ref()
        .unwrap()
        .r_u
        .as_ref()
        .unwrap()
        .settings
        .as_ref()
        .unwrap()
        .fill_rate
}

async fn groups(env: &Env, role: WriteRole) -> ResourceGroups {
    ResourceGroups::new(env.client.clone(), &env.layout, role)
}

/// Run a refused write and check it changed nothing (the store's revision stays).
macro_rules! refused {
    ($env:expr, $call:expr, $want:pat) => {{
        let before = $env.revision().await;
        let got = $call.await.expect("store answers");
        assert!(matches!(got, Err($want)), "got {got:?}");
        assert_eq!(
            $env.revision().await,
            before,
            "a refused write changed the store"
        );
    }};
}

async fn groups_add_modify_delete(env: &mut Env) {
    let rg = groups(env, WriteRole::LegacyAll).await;
    let ks = NULL_KEYSPACE_ID;
    rg.add(ks, group("default", 1000)).await.unwrap().unwrap();
    rg.add(ks, group("g1", 100)).await.unwrap().unwrap();
    refused!(env, rg.add(ks, group("g1", 5)), Refusal::AlreadyExists(_));
    refused!(env, rg.modify(ks, group("nope", 5)), Refusal::NotFound(_));
    refused!(env, rg.delete(ks, "nope"), Refusal::NotFound(_));
    refused!(env, rg.delete(ks, "default"), Refusal::Reserved);
    let mut raw = group("g1", 5);
    raw.mode = metastore::meta::resource_group::GroupMode::RawMode;
    raw.r_u_settings = None;
    refused!(env, rg.modify(ks, raw), Refusal::Invalid(_));
    refused!(env, rg.add(ks, group("", 5)), Refusal::Invalid(_));

    assert_eq!(fill_rate(&rg.get(ks, "g1").await.unwrap().unwrap()), 100);
    rg.modify(ks, group("g1", 200)).await.unwrap().unwrap();
    assert_eq!(fill_rate(&rg.get(ks, "g1").await.unwrap().unwrap()), 200);
    let names: Vec<String> = rg
        .list(ks)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["default", "g1"]);
    rg.delete(ks, "g1").await.unwrap().unwrap();
    assert!(rg.get(ks, "g1").await.unwrap().is_none());
}
meta_test!(groups_add_modify_delete);

/// Groups are per keyspace; in the null keyspace the keyspace path wins over the legacy
/// one, a modify moves a legacy group over, and a delete removes both.
async fn groups_keyspaces_and_legacy_path(env: &mut Env) {
    let rg = groups(env, WriteRole::LegacyAll).await;
    let a = rg.create_keyspace("a").await.unwrap().unwrap();
    let b = rg.create_keyspace("b").await.unwrap().unwrap();
    assert_ne!(a.id, b.id);
    refused!(env, rg.create_keyspace("a"), Refusal::KeyspaceExists(_));
    rg.add(a.id, group("g", 1)).await.unwrap().unwrap();
    rg.add(b.id, group("g", 2)).await.unwrap().unwrap();
    assert_eq!(fill_rate(&rg.get(a.id, "g").await.unwrap().unwrap()), 1);
    assert_eq!(fill_rate(&rg.get(b.id, "g").await.unwrap().unwrap()), 2);
    assert!(rg.get(NULL_KEYSPACE_ID, "g").await.unwrap().is_none());

    // What an older writer left on the legacy path, next to the keyspace path.
    let root = env.layout.namespace("resource_group");
    let mut c = env.client.clone();
    for (name, rate) in [("both", 10), ("old", 20)] {
        let v = serde_json::to_string(&group(name, rate)).unwrap();
        c.put(format!("{root}settings/{name}"), v, None)
            .await
            .unwrap();
    }
    let nk = format!("{root}keyspace/{NULL_KEYSPACE_ID:010}/settings/both");
    let v = serde_json::to_string(&group("both", 11)).unwrap();
    c.put(nk.as_str(), v, None).await.unwrap();

    let null = NULL_KEYSPACE_ID;
    assert_eq!(
        fill_rate(&rg.get(null, "both").await.unwrap().unwrap()),
        11,
        "keyspace path wins"
    );
    assert_eq!(
        fill_rate(&rg.get(null, "old").await.unwrap().unwrap()),
        20,
        "legacy is read"
    );
    let listed: Vec<(String, u64)> = rg
        .list(null)
        .await
        .unwrap()
        .iter()
        .map(|g| (g.name.clone(), fill_rate(g)))
        .collect();
    assert_eq!(listed, [("both".to_string(), 11), ("old".to_string(), 20)]);
    refused!(
        env,
        rg.add(null, group("old", 1)),
        Refusal::AlreadyExists(_)
    );
    // the legacy-only group moves to the keyspace path
    rg.modify(null, group("old", 21)).await.unwrap().unwrap();
    assert!(c
        .get(format!("{root}settings/old"), None)
        .await
        .unwrap()
        .kvs()
        .is_empty());
    assert_eq!(fill_rate(&rg.get(null, "old").await.unwrap().unwrap()), 21);
    rg.delete(null, "both").await.unwrap().unwrap();
    assert!(c
        .get(format!("{root}settings/both"), None)
        .await
        .unwrap()
        .kvs()
        .is_empty());
    assert!(c.get(nk.as_str(), None).await.unwrap().kvs().is_empty());
}
meta_test!(groups_keyspaces_and_legacy_path);

/// The write role gates every write; settings writes never touch token state.
async fn groups_write_roles_and_token_state(env: &mut Env) {
    let all = groups(env, WriteRole::LegacyAll).await;
    let meta = groups(env, WriteRole::MetaOnly).await;
    let token = groups(env, WriteRole::TokenOnly).await;
    let ks = NULL_KEYSPACE_ID;
    meta.add(ks, group("g", 1)).await.unwrap().unwrap();
    refused!(env, token.add(ks, group("h", 1)), Refusal::WrongRole { .. });
    refused!(
        env,
        token.modify(ks, group("g", 2)),
        Refusal::WrongRole { .. }
    );
    refused!(env, token.delete(ks, "g"), Refusal::WrongRole { .. });
    refused!(
        env,
        token.set_service_limit(ks, 1.0),
        Refusal::WrongRole { .. }
    );
    refused!(
        env,
        token.update_controller_config(json!({"ltb-max-wait-duration": "1s"})),
        Refusal::WrongRole { .. }
    );
    let state = TokenState {
        tokens: 42.5,
        last_update_ms: 7,
    };
    refused!(
        env,
        meta.save_token_state(ks, "g", &state),
        Refusal::WrongRole { .. }
    );
    refused!(
        env,
        token.save_token_state(ks, "nope", &state),
        Refusal::NotFound(_)
    );
    token
        .save_token_state(ks, "g", &state)
        .await
        .unwrap()
        .unwrap();

    let state_key = format!(
        "{}keyspace/{ks:010}/states/g",
        env.layout.namespace("resource_group")
    );
    let mut c = env.client.clone();
    let rev_of = |r: etcd_client::GetResponse| r.kvs()[0].mod_revision();
    let before = rev_of(c.get(state_key.as_str(), None).await.unwrap());
    meta.modify(ks, group("g", 3)).await.unwrap().unwrap();
    all.modify(ks, group("g", 4)).await.unwrap().unwrap();
    assert_eq!(
        rev_of(c.get(state_key.as_str(), None).await.unwrap()),
        before
    );
    let g = all.get(ks, "g").await.unwrap().unwrap();
    assert_eq!(fill_rate(&g), 4);
    let tokens = g.r_u_settings.unwrap().r_u.unwrap().tokens;
    assert_eq!(tokens, 42.5, "get fills in the token count");
    // a settings-only delete leaves the token state to the token writer
    meta.delete(ks, "g").await.unwrap().unwrap();
    assert_eq!(all.token_state(ks, "g").await.unwrap(), Some(state));
}
meta_test!(groups_write_roles_and_token_state);

async fn groups_controller_and_service_limits(env: &mut Env) {
    let rg = groups(env, WriteRole::LegacyAll).await;
    let c = rg.controller_config().await.unwrap();
    assert_eq!(c["ltb-max-wait-duration"], "30s");
    let c = rg
        .update_controller_config(json!({"request-unit": {"read-base-cost": 0.5}}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c["request-unit"]["read-base-cost"], 0.5);
    assert_eq!(rg.controller_config().await.unwrap(), c);
    refused!(
        env,
        rg.update_controller_config(json!({"nope": 1})),
        Refusal::Invalid(_)
    );
    refused!(
        env,
        rg.update_controller_config(json!({"ltb-max-wait-duration": 3})),
        Refusal::Invalid(_)
    );
    let a = rg.create_keyspace("a").await.unwrap().unwrap();
    assert_eq!(rg.service_limit(a.id).await.unwrap(), 0.0);
    rg.set_service_limit(a.id, 12.5).await.unwrap().unwrap();
    assert_eq!(rg.service_limit(a.id).await.unwrap(), 12.5);
    refused!(env, rg.set_service_limit(a.id, -1.0), Refusal::Invalid(_));
}
meta_test!(groups_controller_and_service_limits);

/// Every resource-manager path, with a bad body, an unknown group and a wrong role each
/// answered clearly and changing nothing.
async fn groups_http_paths(env: &mut Env) {
    const P: &str = "/resource-manager/api/v1/config";
    let (addr, _server) = serve_meta_http(env, WriteRole::LegacyAll).await;
    let body = |name: &str, rate: u64| {
        json!({"name": name, "mode": 1,
            "r_u_settings": {"r_u": {"settings": {"fill_rate": rate, "burst_limit": -1}}}})
        .to_string()
    };
    let ok = (200, "\"Success!\"".to_string());
    assert_eq!(
        http(&addr, "POST", &format!("{P}/group"), Some(&body("g", 10))).await,
        ok
    );
    assert_eq!(
        http(&addr, "PUT", &format!("{P}/group"), Some(&body("g", 20))).await,
        ok
    );
    let (code, got) = http(&addr, "GET", &format!("{P}/group/g"), None).await;
    assert_eq!(code, 200);
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["r_u_settings"]["r_u"]["settings"]["fill_rate"], 20);
    assert_eq!(got["name"], "g");
    let (code, got) = http(&addr, "GET", &format!("{P}/groups"), None).await;
    assert_eq!(
        (
            code,
            serde_json::from_str::<serde_json::Value>(&got).unwrap()[0]["name"].clone()
        ),
        (200, json!("g"))
    );

    // refusals: each changes nothing
    let cases: Vec<(&str, String, Option<String>, u16)> = vec![
        ("POST", format!("{P}/group"), Some("{not json".into()), 400),
        (
            "POST",
            format!("{P}/group"),
            Some(json!({"name": "x", "mode": 7}).to_string()),
            400,
        ),
        ("POST", format!("{P}/group"), Some(body("g", 1)), 409),
        ("PUT", format!("{P}/group"), Some(body("missing", 1)), 404),
        ("PUT", format!("{P}/group"), Some("[]".into()), 400),
        ("GET", format!("{P}/group/missing"), None, 404),
        ("DELETE", format!("{P}/group/missing"), None, 404),
        ("DELETE", format!("{P}/group/default"), None, 403),
        (
            "POST",
            format!("{P}/group?keyspace_name=nokeyspace"),
            Some(body("k", 1)),
            404,
        ),
        (
            "GET",
            format!("{P}/keyspace/service-limit/nokeyspace"),
            None,
            404,
        ),
        (
            "POST",
            format!("{P}/controller"),
            Some(json!({"nope": 1}).to_string()),
            400,
        ),
        ("POST", format!("{P}/controller"), Some("nope".into()), 400),
    ];
    for (method, path, body, want) in &cases {
        let before = env.revision().await;
        let (code, msg) = http(&addr, method, path, body.as_deref()).await;
        assert_eq!(code, *want, "{method} {path}: {msg}");
        assert!(!msg.is_empty(), "{method} {path}: an error says why");
        assert_eq!(
            env.revision().await,
            before,
            "{method} {path} changed the store"
        );
    }

    // keyspaces: ?keyspace_name= selects one, and service limits are per keyspace
    let rg = ResourceGroups::new(env.client.clone(), &env.layout, WriteRole::LegacyAll);
    rg.create_keyspace("ks1").await.unwrap().unwrap();
    let q = "?keyspace_name=ks1";
    assert_eq!(
        http(&addr, "POST", &format!("{P}/group{q}"), Some(&body("g", 5))).await,
        ok
    );
    let (_, got) = http(&addr, "GET", &format!("{P}/group/g{q}"), None).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got).unwrap()["r_u_settings"]["r_u"]["settings"]
            ["fill_rate"],
        5
    );
    let limit = format!("{P}/keyspace/service-limit/ks1");
    assert_eq!(
        http(&addr, "GET", &limit, None).await,
        (200, json!({"service_limit": 0.0}).to_string())
    );
    assert_eq!(
        http(&addr, "POST", &limit, Some(r#"{"service_limit": 2.5}"#)).await,
        ok
    );
    assert_eq!(
        http(&addr, "GET", &limit, None).await,
        (200, json!({"service_limit": 2.5}).to_string())
    );
    for bad in [r#"{"service_limit": -1}"#, r#"{"limit": 1}"#, "x"] {
        let before = env.revision().await;
        assert_eq!(http(&addr, "POST", &limit, Some(bad)).await.0, 400, "{bad}");
        assert_eq!(env.revision().await, before);
    }
    let (code, got) = http(&addr, "GET", &format!("{P}/controller"), None).await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got).unwrap()["ltb-token-rpc-max-delay"],
        "1s"
    );
    assert_eq!(
        http(
            &addr,
            "POST",
            &format!("{P}/controller"),
            Some(r#"{"ltb-max-wait-duration": "5s"}"#)
        )
        .await,
        ok
    );
    assert_eq!(
        http(&addr, "DELETE", &format!("{P}/group/g"), None).await,
        ok
    );
    assert_eq!(
        http(&addr, "GET", &format!("{P}/group/g"), None).await.0,
        404
    );

    // a server in the wrong role refuses settings writes with 412
    let (token_addr, _token_server) = serve_meta_http(env, WriteRole::TokenOnly).await;
    for (method, path, body) in [
        ("POST", format!("{P}/group"), Some(body("t", 1))),
        ("PUT", format!("{P}/group{q}"), Some(body("g", 1))),
        ("DELETE", format!("{P}/group/g{q}"), None),
        (
            "POST",
            format!("{P}/controller"),
            Some(r#"{"ltb-max-wait-duration": "9s"}"#.to_string()),
        ),
        (
            "POST",
            limit.clone(),
            Some(r#"{"service_limit": 9}"#.to_string()),
        ),
    ] {
        let before = env.revision().await;
        let (code, msg) = http(&token_addr, method, &path, body.as_deref()).await;
        assert_eq!(code, 412, "{method} {path}: {msg}");
        assert!(msg.contains("TokenOnly"), "{msg}");
        assert_eq!(env.revision().await, before);
    }

    // metastore serves the same paths on its client port
    if env.kind == Kind::Metastore {
        let (code, got) = http(&env.endpoint, "GET", &format!("{P}/groups"), None).await;
        assert_eq!((code, got.as_str()), (200, "[]"));
        let (code, _) = http(
            &env.endpoint,
            "POST",
            &format!("{P}/group"),
            Some(&body("p", 1)),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(
            http(&env.endpoint, "GET", &format!("{P}/group/p"), None)
                .await
                .0,
            200
        );
    }

    // a store that cannot answer is a 503
    env.stop().await;
    let (code, msg) = http(&addr, "GET", &format!("{P}/groups"), None).await;
    assert_eq!(code, 503, "{msg}");
}
meta_test!(groups_http_paths);
