//! Clients, API keys and authentication, through the router, on both driver sets: SQLite with
//! the memory cache, and PostgreSQL with Redis (cache and queue). The behaviour suite is written
//! once ([`on_both!`]); the multi-process tests need a shared cache and run on Redis only.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use app::auth::{KeyStore, dev_secret_path, keys};
use app::settings::{Environment, ForgeRunConfig};
use app::{AppContext, Settings};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Reply, send};
use core_db::on_db;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// One deployment: its settings, and what must live as long as it. Every [`Fixture::connect`]
/// builds another process's context on the same database, cache, queue and `DATA_DIR`.
struct Fixture {
    vars: HashMap<String, String>,
    dir: tempfile::TempDir,
    postgres: Option<test_support::TestPostgres>,
    _redis: Option<test_support::TestRedis>,
}

impl Fixture {
    fn base(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars = HashMap::from([
            (
                "STORAGE_ROOT".to_owned(),
                dir.path().join("storage").display().to_string(),
            ),
            (
                "DATA_DIR".to_owned(),
                dir.path().join("data").display().to_string(),
            ),
        ]);
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        vars
    }

    async fn sqlite(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut vars = Self::base(&dir, extra);
        vars.insert(
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}", dir.path().join("app.sqlite3").display()),
        );
        vars.entry("CACHE_URL".to_owned())
            .or_insert_with(|| "memory://".to_owned());
        Self {
            vars,
            dir,
            postgres: None,
            _redis: None,
        }
    }

    /// PostgreSQL and Redis (cache and queue), or `None` after a SKIPPED line when a service is
    /// missing (a failure under `RUSTFORGE_REQUIRE_SERVICES=1`). `cache` is `redis` or
    /// `tiered+redis`.
    async fn postgres(test: &str, cache: &str, extra: &[(&str, &str)]) -> Option<Self> {
        let pg = test_support::postgres(test).await?;
        let redis = test_support::redis(test).await?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut vars = Self::base(&dir, extra);
        let cache_url = redis.url.replacen("redis", cache, 1);
        for (k, v) in [
            ("DATABASE_URL", pg.url.as_str()),
            ("CACHE_URL", cache_url.as_str()),
            ("REDIS_URL", redis.url.as_str()),
            ("QUEUE_URL", redis.url.as_str()),
            ("APP_NAME", redis.prefix.as_str()),
        ] {
            vars.insert(k.to_owned(), v.to_owned());
        }
        Some(Self {
            vars,
            dir,
            postgres: Some(pg),
            _redis: Some(redis),
        })
    }

    fn settings(&self) -> Settings {
        Settings::from_lookup(|name| self.vars.get(name).cloned()).expect("settings")
    }

    async fn connect(&self) -> (Router, AppContext) {
        let ctx = AppContext::connect(self.settings()).await.expect("context");
        (app::router(ctx.clone()), ctx)
    }

    /// Everything the database holds about API keys, as text: the SQLite files byte for byte,
    /// or every `api_keys` row of PostgreSQL as JSON.
    async fn stored_text(&self) -> String {
        match &self.postgres {
            Some(pg) => {
                let rows: Vec<String> =
                    sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
                        .fetch_all(&pg.pool)
                        .await
                        .expect("api_keys rows");
                assert!(!rows.is_empty());
                rows.join("\n")
            }
            None => {
                let mut text = String::new();
                for entry in std::fs::read_dir(self.dir.path()).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_file() {
                        text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                    }
                }
                assert!(text.contains("api_keys"), "the SQLite files were read");
                text
            }
        }
    }
}

/// Instantiates each suite function once per driver set: `mod <name> { sqlite_memory,
/// postgres_redis }`, with the given extra settings.
macro_rules! on_both {
    ($($name:ident [$($k:literal = $v:literal),*];)*) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite_memory() {
                let fixture = super::Fixture::sqlite(&[$(($k, $v)),*]).await;
                super::$name(&fixture).await;
            }

            #[tokio::test]
            async fn postgres_redis() {
                let Some(fixture) = super::Fixture::postgres(
                    concat!("auth::", stringify!($name)),
                    "redis",
                    &[$(($k, $v)),*],
                )
                .await
                else {
                    return;
                };
                super::$name(&fixture).await;
            }
        }
    )*};
}

on_both! {
    a_new_client_key_works [];
    bad_credentials_are_rejected_before_any_lookup [];
    revoking_stops_a_key_at_once [];
    clients_see_only_their_own_keys [];
    renewed_keys_overlap_then_expire ["API_KEY_RENEW_OVERLAP" = "1"];
    keys_expire_after_their_ttl ["API_KEY_TTL" = "2"];
    the_database_never_holds_the_key [];
    the_dev_secret_is_shared_by_every_connect [];
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    let request = match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request");
    send(app, request).await
}

/// A new client: `(client_id, key_id, api_key)`.
async fn new_client(app: &Router) -> (String, String, String) {
    let reply = call(
        app,
        "POST",
        "/v1/clients",
        None,
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let data = &reply.json["data"];
    (
        data["client_id"].as_str().unwrap().to_owned(),
        data["key_id"].as_str().unwrap().to_owned(),
        data["api_key"].as_str().unwrap().to_owned(),
    )
}

/// `GET /v1/clients/{client}/keys` with `key`.
async fn list(app: &Router, client: &str, key: &str) -> Reply {
    call(
        app,
        "GET",
        &format!("/v1/clients/{client}/keys"),
        Some(key),
        None,
    )
    .await
}

/// Asserts `reply` is the error `status` / `code`.
#[track_caller]
fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.json);
    assert_eq!(reply.json["error_code"], code, "{}", reply.json);
    assert!(reply.json.get("data").is_none());
}

/// Asserts a 401 with a `Bearer` challenge.
#[track_caller]
fn assert_unauthorized(reply: &Reply, code: &str) {
    assert_error(reply, StatusCode::UNAUTHORIZED, code);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

/// Asserts the key works: it lists its client's keys.
async fn assert_works(app: &Router, client: &str, key: &str) {
    let reply = list(app, client, key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_no_key(&reply, key);
}

/// Asserts the reply carries no key text: neither `key` nor anything shaped like a key.
#[track_caller]
fn assert_no_key(reply: &Reply, key: &str) {
    let text = reply.json.to_string();
    assert!(!text.contains(key), "{text}");
    assert!(!text.contains(&key[4..47]), "{text}");
    assert!(reply.json["data"].get("api_key").is_none(), "{text}");
    // Nor any other key: no well-formed key starts anywhere in the text.
    for (at, _) in text.match_indices(keys::PREFIX) {
        let candidate = text.get(at..at + keys::KEY_LEN).unwrap_or("");
        assert!(!keys::is_well_formed(candidate), "{text}");
    }
}

fn ts(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .to_utc()
}

// ---------------------------------------------------------------------------------------------
// The suite, run on both driver sets
// ---------------------------------------------------------------------------------------------

async fn a_new_client_key_works(fx: &Fixture) {
    let (app, _ctx) = fx.connect().await;
    let reply = call(
        &app,
        "POST",
        "/v1/clients",
        None,
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let data = &reply.json["data"];
    let key = data["api_key"].as_str().unwrap();
    assert!(keys::is_well_formed(key), "{key}");
    assert_eq!(key.len(), 53);
    assert_eq!(data["key_prefix"], key[..8]);
    assert_eq!(data["key_last_four"], key[key.len() - 4..]);
    assert!(data["expires_at"].is_null(), "no API_KEY_TTL, no expiry");
    let created = ts(&data["created_at"]);
    assert!((chrono::Utc::now() - created).num_seconds().abs() < 60);
    let client = data["client_id"].as_str().unwrap();
    uuid::Uuid::parse_str(client).unwrap();
    let key_id = data["key_id"].as_str().unwrap();
    uuid::Uuid::parse_str(key_id).unwrap();

    let reply = list(&app, client, key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_no_key(&reply, key);
    let listed = reply.json["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["key_id"], key_id);
    assert_eq!(listed[0]["key_prefix"], key[..8]);
    assert_eq!(listed[0]["key_last_four"], key[key.len() - 4..]);
    assert!(listed[0]["revoked_at"].is_null());
    assert!(listed[0].get("key_hash").is_none());

    // No body at all is a client without a name; a second client gets other ids and key.
    let reply = call(&app, "POST", "/v1/clients", None, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_ne!(reply.json["data"]["client_id"], client);
    assert_ne!(reply.json["data"]["api_key"], key);

    // Bad bodies are refused before anything is created.
    let long = "x".repeat(201);
    let reply = call(
        &app,
        "POST",
        "/v1/clients",
        None,
        Some(json!({"name": long})),
    )
    .await;
    assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let reply = call(
        &app,
        "POST",
        "/v1/clients",
        None,
        Some(json!({"nmae": "typo"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);
}

async fn bad_credentials_are_rejected_before_any_lookup(fx: &Fixture) {
    let (app, ctx) = fx.connect().await;
    let (client, _key_id, key) = new_client(&app).await;
    let uri = format!("/v1/clients/{client}/keys");
    assert_works(&app, &client, &key).await;

    let reply = send(&app, common::request("GET", &uri, None, None)).await;
    assert_unauthorized(&reply, "RFA_AUTH_INVALID_CREDENTIALS");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");

    let mut typo = key.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    assert!(
        !keys::is_well_formed(&typo),
        "one changed character fails the checksum"
    );
    let unknown = keys::generate();
    let malformed = [
        typo.as_str(),
        "nonsense",
        &key[..52],
        &format!("{key}x"),
        &key.replacen("frk_", "frx_", 1),
    ];
    for bad in malformed.iter().copied().chain([unknown.as_str()]) {
        let reply = call(&app, "GET", &uri, Some(bad), None).await;
        assert_unauthorized(&reply, "RFA_AUTH_INVALID_CREDENTIALS");
        assert_eq!(
            reply.headers["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert_no_key(&reply, &key);
    }
    for header in [format!("Basic {key}"), key.clone(), "Bearer ".to_owned()] {
        let request = Request::builder()
            .uri(&uri)
            .header("authorization", header)
            .body(Body::empty())
            .unwrap();
        let reply = send(&app, request).await;
        assert_unauthorized(&reply, "RFA_AUTH_INVALID_CREDENTIALS");
    }

    // With the database gone, a malformed key is still a plain 401: it was never looked up.
    // A well-formed unknown key needs the database (500), and the valid key, used above, is
    // answered from the cache.
    ctx.db.close().await;
    for bad in malformed {
        let reply = call(&app, "GET", &uri, Some(bad), None).await;
        assert_unauthorized(&reply, "RFA_AUTH_INVALID_CREDENTIALS");
    }
    let reply = call(&app, "GET", &uri, Some(&unknown), None).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        reply.json
    );
    let reply = call(&app, "POST", &format!("{uri}/renew"), Some(&key), None).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "authenticated from the cache, then the renewal needs the database: {}",
        reply.json
    );
}

async fn revoking_stops_a_key_at_once(fx: &Fixture) {
    let (app, _ctx) = fx.connect().await;
    let (client, first_id, first) = new_client(&app).await;
    let uri = format!("/v1/clients/{client}/keys");

    let reply = call(&app, "POST", &uri, Some(&first), None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let second = reply.json["data"]["api_key"].as_str().unwrap().to_owned();
    let second_id = reply.json["data"]["key_id"].as_str().unwrap().to_owned();
    assert!(keys::is_well_formed(&second));
    assert_ne!(second, first);
    assert_eq!(reply.json["data"]["client_id"], client);
    // Used once, so that it sits in the cache when it is revoked.
    assert_works(&app, &client, &second).await;

    let revoke = format!("{uri}/revoke");
    let reply = call(
        &app,
        "POST",
        &revoke,
        Some(&first),
        Some(json!({"key_id": second_id})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["data"]["key_id"], second_id);
    let revoked_at = reply.json["data"]["revoked_at"].clone();
    ts(&revoked_at);
    assert_no_key(&reply, &second);
    assert_no_key(&reply, &first);

    let reply = list(&app, &client, &second).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "RFA_AUTH_API_KEY_DISABLED");
    assert_works(&app, &client, &first).await;

    // Revoking again changes nothing; unknown ids are 404.
    let reply = call(
        &app,
        "POST",
        &revoke,
        Some(&first),
        Some(json!({"key_id": second_id})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["data"]["revoked_at"], revoked_at);
    let missing = uuid::Uuid::new_v4().to_string();
    let reply = call(
        &app,
        "POST",
        &revoke,
        Some(&first),
        Some(json!({"key_id": missing})),
    )
    .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "RFA_API_KEY_NOT_FOUND");
    let reply = call(&app, "POST", &revoke, Some(&first), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);

    let listed = list(&app, &client, &first).await;
    let listed = listed.json["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    let entry = listed.iter().find(|k| k["key_id"] == second_id).unwrap();
    assert_eq!(entry["revoked_at"], revoked_at);

    // A key may revoke itself.
    let reply = call(
        &app,
        "POST",
        &revoke,
        Some(&first),
        Some(json!({"key_id": first_id})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let reply = list(&app, &client, &first).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "RFA_AUTH_API_KEY_DISABLED");
    assert!(reply.headers.get("www-authenticate").is_none());
}

async fn clients_see_only_their_own_keys(fx: &Fixture) {
    let (app, _ctx) = fx.connect().await;
    let (alice, alice_key_id, alice_key) = new_client(&app).await;
    let (bob, _bob_key_id, bob_key) = new_client(&app).await;
    let alice_uri = format!("/v1/clients/{alice}/keys");

    // Bob on Alice's path: 404 whatever the route, and nothing happens.
    for (method, uri, body) in [
        ("GET", alice_uri.clone(), None),
        ("POST", alice_uri.clone(), None),
        ("POST", format!("{alice_uri}/renew"), None),
        (
            "POST",
            format!("{alice_uri}/revoke"),
            Some(json!({"key_id": alice_key_id})),
        ),
        ("GET", "/v1/clients/no-such-client/keys".to_owned(), None),
    ] {
        let reply = call(&app, method, &uri, Some(&bob_key), body).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "RFA_CLIENT_NOT_FOUND");
        assert_no_key(&reply, &alice_key);
    }
    // Bob revoking Alice's key id on his own path: the key is not his, 404.
    let reply = call(
        &app,
        "POST",
        &format!("/v1/clients/{bob}/keys/revoke"),
        Some(&bob_key),
        Some(json!({"key_id": alice_key_id})),
    )
    .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "RFA_API_KEY_NOT_FOUND");

    let reply = list(&app, &alice, &alice_key).await;
    let listed = reply.json["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "Bob's POST created no key for Alice");
    assert!(listed[0]["revoked_at"].is_null());
    assert_works(&app, &alice, &alice_key).await;
    let reply = list(&app, &bob, &bob_key).await;
    assert_eq!(reply.json["data"].as_array().unwrap().len(), 1);
    // Unauthenticated requests are 401 before any ownership question.
    let reply = call(&app, "GET", &alice_uri, None, None).await;
    assert_unauthorized(&reply, "RFA_AUTH_INVALID_CREDENTIALS");
}

async fn renewed_keys_overlap_then_expire(fx: &Fixture) {
    let (app, _ctx) = fx.connect().await;
    let (client, old_id, old) = new_client(&app).await;
    let uri = format!("/v1/clients/{client}/keys");
    assert_works(&app, &client, &old).await; // cached without an expiry

    let reply = call(&app, "POST", &format!("{uri}/renew"), Some(&old), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let data = &reply.json["data"];
    let new = data["api_key"].as_str().unwrap().to_owned();
    assert!(keys::is_well_formed(&new));
    assert_ne!(new, old);
    assert_eq!(data["client_id"], client);
    assert_eq!(data["previous_key"]["key_id"], old_id);
    let deadline = ts(&data["previous_key"]["expires_at"]);
    let left = deadline - chrono::Utc::now();
    assert!(left <= chrono::Duration::seconds(1), "{left}");
    assert!(
        data["expires_at"].is_null(),
        "the new key has no API_KEY_TTL expiry"
    );

    // Both work during the overlap.
    assert_works(&app, &client, &old).await;
    assert_works(&app, &client, &new).await;
    // A key created without `rotate` leaves the others alone.
    let reply = call(
        &app,
        "POST",
        &uri,
        Some(&new),
        Some(json!({"rotate": false})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let extra = reply.json["data"]["api_key"].as_str().unwrap().to_owned();
    assert!(reply.json["data"]["expires_at"].is_null());

    sleep_past(deadline).await;
    let reply = list(&app, &client, &old).await;
    assert_unauthorized(&reply, "RFA_AUTH_TOKEN_EXPIRED");
    assert_works(&app, &client, &new).await;
    assert_works(&app, &client, &extra).await;

    // `rotate: true` schedules every other key, the caller's included.
    let reply = call(
        &app,
        "POST",
        &uri,
        Some(&new),
        Some(json!({"rotate": true})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let rotated = reply.json["data"]["api_key"].as_str().unwrap().to_owned();
    let rotation = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_works(&app, &client, &new).await;
    assert_works(&app, &client, &extra).await;
    sleep_past(rotation).await;
    for gone in [&new, &extra, &old] {
        let reply = list(&app, &client, gone).await;
        assert_unauthorized(&reply, "RFA_AUTH_TOKEN_EXPIRED");
    }
    assert_works(&app, &client, &rotated).await;
    let reply = list(&app, &client, &rotated).await;
    let listed = reply.json["data"].as_array().unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(
        listed.iter().filter(|k| k["expires_at"].is_null()).count(),
        1,
        "only the rotated-in key has no expiry: {listed:?}"
    );
}

async fn keys_expire_after_their_ttl(fx: &Fixture) {
    let (app, _ctx) = fx.connect().await;
    let reply = call(&app, "POST", "/v1/clients", None, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let data = &reply.json["data"];
    let client = data["client_id"].as_str().unwrap().to_owned();
    let key = data["api_key"].as_str().unwrap().to_owned();
    let expires = ts(&data["expires_at"]);
    assert_eq!(
        (expires - ts(&data["created_at"])).num_milliseconds(),
        2000,
        "API_KEY_TTL=2"
    );
    // Cached while it works: the cached expiry is what stops it.
    assert_works(&app, &client, &key).await;
    let reply = call(
        &app,
        "POST",
        &format!("/v1/clients/{client}/keys"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let second = reply.json["data"]["api_key"].as_str().unwrap().to_owned();
    let second_expires = ts(&reply.json["data"]["expires_at"]);
    assert!(second_expires > expires);

    sleep_past(expires).await;
    let reply = list(&app, &client, &key).await;
    assert_unauthorized(&reply, "RFA_AUTH_TOKEN_EXPIRED");
    assert_no_key(&reply, &key);
    sleep_past(second_expires).await;
    let reply = list(&app, &client, &second).await;
    assert_unauthorized(&reply, "RFA_AUTH_TOKEN_EXPIRED");
}

async fn the_database_never_holds_the_key(fx: &Fixture) {
    let (app, ctx) = fx.connect().await;
    let (client, key_id, key) = new_client(&app).await;
    let reply = call(
        &app,
        "POST",
        &format!("/v1/clients/{client}/keys/renew"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let renewed = reply.json["data"]["api_key"].as_str().unwrap().to_owned();
    assert_works(&app, &client, &renewed).await;

    let rows: Vec<(String, String, String, String)> = on_db!(&ctx.db, pool => {
        sqlx::query_as("SELECT id, key_hash, prefix, last_four FROM api_keys ORDER BY created_at, id")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    assert_eq!(rows.len(), 2);
    let row = rows.iter().find(|r| r.0 == key_id).unwrap();
    assert_eq!(
        row.1,
        ctx.keys.hash(&key),
        "HMAC-SHA-256 under the server secret"
    );
    assert_eq!(row.1.len(), 64);
    assert!(row.1.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!((row.2.as_str(), row.3.as_str()), (&key[..8], &key[49..]));

    let stored = fx.stored_text().await;
    for raw in [&key, &renewed] {
        assert!(!stored.contains(raw.as_str()));
        assert!(!stored.contains(&raw[4..47]), "not even the random body");
        assert!(stored.contains(&ctx.keys.hash(raw)));
    }
    // The cache holds the hash-keyed row, never the key either.
    let cached = ctx
        .cache
        .get(&KeyStore::cache_key(&ctx.keys.hash(&renewed)))
        .await
        .unwrap()
        .expect("the used key is cached");
    assert!(!cached.contains(&renewed) && !cached.contains(&renewed[4..47]));
}

async fn the_dev_secret_is_shared_by_every_connect(fx: &Fixture) {
    // No API_KEY_SECRET: the first connect writes the secret, the second reads the same one.
    let (first, ctx) = fx.connect().await;
    let path = dev_secret_path(&ctx.settings.forgerun.data_dir);
    let written = std::fs::read_to_string(&path).unwrap();
    let (client, _, key) = new_client(&first).await;
    let (second, other) = fx.connect().await;
    assert_eq!(other.keys.hash(&key), ctx.keys.hash(&key));
    assert_works(&second, &client, &key).await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        written,
        "reused, not rewritten"
    );
}

/// Sleeps until `at` has passed (plus a little).
async fn sleep_past(at: chrono::DateTime<chrono::Utc>) {
    let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(50)).await;
}

// ---------------------------------------------------------------------------------------------
// Several processes on one Redis and one PostgreSQL
// ---------------------------------------------------------------------------------------------

/// Process B caches a key; process A revokes it; B refuses it on its very next request.
#[tokio::test]
async fn a_revocation_reaches_every_process_at_once() {
    let Some(fx) = Fixture::postgres("auth::revocation_every_process", "redis", &[]).await else {
        return;
    };
    let (a, _a_ctx) = fx.connect().await;
    let (b, b_ctx) = fx.connect().await;
    let (client, _, first) = new_client(&a).await;
    let reply = call(
        &a,
        "POST",
        &format!("/v1/clients/{client}/keys"),
        Some(&first),
        None,
    )
    .await;
    let second = reply.json["data"]["api_key"].as_str().unwrap().to_owned();
    let second_id = reply.json["data"]["key_id"].as_str().unwrap().to_owned();
    assert_works(&b, &client, &second).await;
    let cache_key = KeyStore::cache_key(&b_ctx.keys.hash(&second));
    assert!(
        b_ctx.cache.get(&cache_key).await.unwrap().is_some(),
        "B cached the key"
    );

    let reply = call(
        &a,
        "POST",
        &format!("/v1/clients/{client}/keys/revoke"),
        Some(&first),
        Some(json!({"key_id": second_id})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let reply = list(&b, &client, &second).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "RFA_AUTH_API_KEY_DISABLED");
    assert_works(&b, &client, &first).await;
}

/// With a tiered cache each process keeps the key in its own memory; the revocation evicts it
/// there too, within the tiered cache's documented bound (2 s), normally in milliseconds.
#[tokio::test]
async fn a_revocation_reaches_every_tiered_process() {
    let Some(fx) = Fixture::postgres(
        "auth::revocation_every_tiered_process",
        "tiered+redis",
        &[("API_KEY_RENEW_OVERLAP", "1")],
    )
    .await
    else {
        return;
    };
    let (a, _a_ctx) = fx.connect().await;
    let (b, _b_ctx) = fx.connect().await;
    let (client, key_id, key) = new_client(&a).await;
    // B's memory tier holds the key (read twice: a miss, then a memory hit).
    assert_works(&b, &client, &key).await;
    assert_works(&b, &client, &key).await;

    let reply = call(
        &a,
        "POST",
        &format!("/v1/clients/{client}/keys/renew"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let renewed = reply.json["data"]["api_key"].as_str().unwrap().to_owned();
    let renewed_id = reply.json["data"]["key_id"].clone();
    let deadline = ts(&reply.json["data"]["previous_key"]["expires_at"]);
    sleep_past(deadline).await;
    let reply = list(&b, &client, &key).await;
    assert_unauthorized(&reply, "RFA_AUTH_TOKEN_EXPIRED");

    let reply = call(
        &a,
        "POST",
        &format!("/v1/clients/{client}/keys/revoke"),
        Some(&renewed),
        Some(json!({"key_id": key_id})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_works(&b, &client, &renewed).await;
    assert_works(&b, &client, &renewed).await;
    let reply = call(
        &a,
        "POST",
        &format!("/v1/clients/{client}/keys/revoke"),
        Some(&renewed),
        Some(json!({"key_id": renewed_id})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let started = std::time::Instant::now();
    loop {
        let reply = list(&b, &client, &renewed).await;
        if reply.status == StatusCode::FORBIDDEN {
            assert_error(&reply, StatusCode::FORBIDDEN, "RFA_AUTH_API_KEY_DISABLED");
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B still accepts a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The secret
// ---------------------------------------------------------------------------------------------

fn dev_config(dir: &std::path::Path) -> ForgeRunConfig {
    ForgeRunConfig {
        data_dir: dir.join("data"),
        ..ForgeRunConfig::default()
    }
}

#[test]
fn the_dev_secret_is_created_once_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dev_config(dir.path());
    let first = KeyStore::from_config(&config).unwrap();
    let path = dev_secret_path(&config.data_dir);
    let content = std::fs::read_to_string(&path).unwrap();
    assert_eq!(content.len(), 64);
    assert!(content.bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        !format!("{first:?}").contains(&content),
        "Debug hides the secret"
    );

    let key = keys::generate();
    let again = KeyStore::from_config(&config).unwrap();
    assert_eq!(again.hash(&key), first.hash(&key));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);

    // Another directory, another secret, other hashes.
    let other_dir = tempfile::tempdir().unwrap();
    let other = KeyStore::from_config(&dev_config(other_dir.path())).unwrap();
    assert_ne!(other.hash(&key), first.hash(&key));
}

#[test]
fn concurrent_first_starts_agree_on_one_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dev_config(dir.path());
    let key = keys::generate();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let hashes: Vec<String> = (0..8)
        .map(|_| {
            let (config, key, barrier) = (config.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                KeyStore::from_config(&config).unwrap().hash(&key)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    let files: Vec<_> = std::fs::read_dir(&config.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["api_key_secret"], "no temporary file left behind");
}

#[test]
fn api_key_secret_wins_and_production_requires_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s".repeat(40);
    let config = ForgeRunConfig {
        api_key_secret: Some(secret.clone()),
        ..dev_config(dir.path())
    };
    let store = KeyStore::from_config(&config).unwrap();
    assert!(
        !config.data_dir.exists(),
        "no file when API_KEY_SECRET is set"
    );
    let key = keys::generate();
    assert_eq!(
        store.hash(&key),
        KeyStore::from_config(&config).unwrap().hash(&key)
    );
    assert!(!format!("{store:?}").contains(&secret));

    let data_dir = dir.path().join("data").display().to_string();
    let load = |vars: &[(&str, &str)]| {
        let vars: HashMap<String, String> = vars
            .iter()
            .chain(&[("DATA_DIR", data_dir.as_str())])
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    };
    let err = load(&[("APP_ENV", "production")]).unwrap_err().to_string();
    assert!(err.contains("API_KEY_SECRET"), "{err}");
    let err = load(&[("APP_ENV", "production"), ("API_KEY_SECRET", "short")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("API_KEY_SECRET") && !err.contains("short\""),
        "{err}"
    );
    let settings = load(&[("APP_ENV", "production"), ("API_KEY_SECRET", &secret)]).unwrap();
    assert_eq!(settings.forgerun.env, Environment::Production);
    KeyStore::from_config(&settings.forgerun).unwrap();
    assert!(
        !config.data_dir.exists(),
        "production never writes a secret file"
    );

    // A production configuration built by hand without a secret is refused too.
    let config = ForgeRunConfig {
        env: Environment::Production,
        ..dev_config(dir.path())
    };
    let err = KeyStore::from_config(&config).unwrap_err().to_string();
    assert!(err.contains("API_KEY_SECRET"), "{err}");
    assert!(!config.data_dir.exists());
}

#[test]
fn a_damaged_secret_file_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let config = dev_config(dir.path());
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let path = dev_secret_path(&config.data_dir);
    std::fs::write(&path, "too short").unwrap();
    let err = format!("{:#}", KeyStore::from_config(&config).unwrap_err());
    assert!(
        err.contains("api_key_secret") && !err.contains("too short"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "too short");
}

// ---------------------------------------------------------------------------------------------
// The binary's logs
// ---------------------------------------------------------------------------------------------

/// One request over a real socket: the status and the JSON body.
async fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    let reply = test_support::http_request(addr, method, path, &headers, body.as_bytes())
        .await
        .unwrap();
    (reply.status, reply.json())
}

/// Through the real binary and a real socket: create, renew, use, revoke; the logs (debug level)
/// name the development secret's file and the clients, never a key or the secret.
#[tokio::test]
async fn the_logs_never_hold_a_key_or_the_secret() {
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_app"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "debug")
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut logs = Vec::new();
    let addr: std::net::SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the app logs its address");
        logs.push(line.clone());
        if let Some(at) = line.find("http://") {
            let rest = &line[at + 7..];
            let end = rest.find('"').unwrap_or(rest.len());
            break rest[..end].parse().unwrap();
        }
    };
    // A real empty body (Content-Length: 0, no Content-Type) is a client without a name.
    let (status, created) = raw(addr, "POST", "/v1/clients", None, "").await;
    assert_eq!(status, 201, "{created}");
    let client = created["data"]["client_id"].as_str().unwrap().to_owned();
    let first = created["data"]["api_key"].as_str().unwrap().to_owned();
    let first_id = created["data"]["key_id"].as_str().unwrap().to_owned();
    let keys_uri = format!("/v1/clients/{client}/keys");
    let renew_uri = format!("{keys_uri}/renew");
    let (status, renewed) = raw(addr, "POST", &renew_uri, Some(&first), "").await;
    assert_eq!(status, 200, "{renewed}");
    let second = renewed["data"]["api_key"].as_str().unwrap().to_owned();
    let (status, listed) = raw(addr, "GET", &keys_uri, Some(&second), "").await;
    assert_eq!(status, 200, "{listed}");
    let revoke = json!({ "key_id": first_id }).to_string();
    let revoke_uri = format!("{keys_uri}/revoke");
    let (status, revoked) = raw(addr, "POST", &revoke_uri, Some(&second), &revoke).await;
    assert_eq!(status, 200, "{revoked}");
    let (status, refused) = raw(addr, "GET", &keys_uri, Some(&first), "").await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error_code"], "RFA_AUTH_API_KEY_DISABLED");
    let mut typo = second.clone();
    typo.replace_range(9..10, if &second[9..10] == "x" { "y" } else { "x" });
    let (status, _) = raw(addr, "GET", &keys_uri, Some(&typo), "").await;
    assert_eq!(status, 401);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(child.wait().unwrap().success());
    logs.extend(rx.iter());
    let logs = format!("{}\n{}", logs.join("\n"), stderr.join().unwrap());

    let secret = std::fs::read_to_string(dir.path().join("data").join("api_key_secret")).unwrap();
    for hidden in [
        first.as_str(),
        &first[4..47],
        &second,
        &second[4..47],
        secret.trim(),
    ] {
        assert!(
            !logs.contains(hidden),
            "{hidden} appears in the logs:\n{logs}"
        );
    }
    assert!(
        logs.lines()
            .any(|l| l.contains("API_KEY_SECRET is not set") && l.contains("api_key_secret")),
        "the development secret's warning names its file:\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("api_key.revoked") && l.contains(&client)),
        "the revocation is logged with its client:\n{logs}"
    );
}
