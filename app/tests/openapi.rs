//! `GET /openapi.json`: the document is OpenAPI 3.1, documents exactly the routes the router
//! serves (with the right methods, security and errors), and its schemas match what the
//! handlers accept and answer.

mod common;

use std::collections::BTreeSet;

use app::jobs::WorkKind;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{app, send};
use serde_json::{Value, json};

/// Every operation ForgeRun serves, as the specification lists them: (method, path, needs a key).
const OPERATIONS: &[(&str, &str, bool)] = &[
    ("get", "/health", false),
    ("get", "/ready", false),
    ("get", "/metrics", false),
    ("get", "/openapi.json", false),
    ("get", "/storage/{key}", false),
    ("post", "/v1/clients", false),
    ("get", "/v1/clients/{id}/keys", true),
    ("post", "/v1/clients/{id}/keys", true),
    ("post", "/v1/clients/{id}/keys/renew", true),
    ("post", "/v1/clients/{id}/keys/revoke", true),
    ("get", "/v1/jobs", true),
    ("post", "/v1/jobs", true),
    ("get", "/v1/jobs/{id}", true),
    ("post", "/v1/jobs/{id}/cancel", true),
    ("post", "/v1/jobs/{id}/retry", true),
    ("get", "/v1/jobs/{id}/report", true),
    ("get", "/v1/jobs/{id}/events", true),
    ("get", "/v1/webhooks", true),
    ("post", "/v1/webhooks", true),
    ("delete", "/v1/webhooks/{id}", true),
    ("get", "/v1/webhooks/{id}/deliveries", true),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

async fn document(router: &Router) -> Value {
    let reply = send(
        router,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json
}

/// Registers a client; its id and key.
async fn register(router: &Router) -> (String, String) {
    let req = Request::post("/v1/clients").body(Body::empty()).unwrap();
    let reply = send(router, req).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let data = &reply.json["data"];
    (
        data["client_id"].as_str().unwrap().to_owned(),
        data["api_key"].as_str().unwrap().to_owned(),
    )
}

/// `method path` with an optional key and JSON body.
fn call(method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(path);
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    match body {
        Some(body) => req
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap()
}

/// Follows a local `$ref` (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            resolve(doc, doc.pointer(pointer).expect("the reference resolves"))
        }
        None => schema,
    }
}

/// The property names of a component schema (through `allOf`, for flattened fields).
fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
    schema_properties(doc, &doc["components"]["schemas"][name])
}

fn schema_properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema["allOf"].as_array() {
        return parts
            .iter()
            .flat_map(|part| schema_properties(doc, part))
            .collect();
    }
    schema["properties"]
        .as_object()
        .expect("a schema with properties")
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_every_route_with_its_methods() {
    let (router, _ctx, _dir) = app(&[]).await;
    let doc = document(&router).await;
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert_eq!(doc["info"]["title"], "ForgeRun");

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| ((*m).to_owned(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    for (method, path, authenticated) in OPERATIONS {
        let operation = &doc["paths"][path][method];
        let security = operation["security"].as_array();
        if *authenticated {
            assert_eq!(
                security.unwrap(),
                &vec![json!({"bearer": []})],
                "{method} {path}"
            );
            for status in ["401", "403", "429"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} {status}"
                );
            }
            let ok = operation["responses"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(status, _)| status.starts_with('2'))
                .unwrap()
                .1;
            assert!(ok["headers"]["RateLimit"].is_object(), "{method} {path}");
            assert!(
                operation["responses"]["429"]["headers"]["Retry-After"].is_object(),
                "{method} {path}"
            );
        } else {
            assert!(security.is_none(), "{method} {path}");
        }
        // Every error answer offers both the JSON error body and problem details.
        let responses = operation["responses"].as_object().unwrap();
        assert!(responses.contains_key("500"), "{method} {path}");
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let content = &response["content"];
                assert_eq!(
                    content["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/ProblemDetails",
                    "{method} {path} {status}"
                );
            }
        }
        // Path ids are UUIDs.
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] == "path" && parameter["name"] == "id" {
                assert_eq!(parameter["schema"]["format"], "uuid", "{method} {path}");
                assert_eq!(parameter["required"], true);
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "frk_ API key",
               "description": "An API key of the client, `frk_` + 32 random bytes in base62 + a checksum"})
    );
}

/// Each documented operation is served: a request to it reaches its handler (never the
/// router's 404 or 405), and it asks for a key exactly when the document says so.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let (router, _ctx, _dir) = app(&[]).await;
    let doc = document(&router).await;
    let (_client, key) = register(&router).await;
    let other = uuid::Uuid::new_v4().to_string();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            if path == "/metrics" {
                // Prometheus text, not JSON.
                let res =
                    tower::ServiceExt::oneshot(router.clone(), call(method, path, None, None))
                        .await
                        .unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                assert!(
                    item[*method]["responses"]["200"]["content"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .any(|t| res.headers()["content-type"] == t.as_str())
                );
                continue;
            }
            let uri = path
                .replace("{id}", &other)
                .replace("{key}", "private/file.txt");
            let body = match (*method, path.as_str()) {
                (_, "/v1/jobs") if *method == "post" => Some(json!({"work_kind": "SUCCESS_FAST"})),
                (_, "/v1/clients/{id}/keys/revoke") => Some(json!({"key_id": "k"})),
                _ => None,
            };
            let secured = item[*method]["security"].is_array();
            if secured {
                let reply = send(&router, call(method, &uri, None, body.clone())).await;
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            }
            let reply = send(&router, call(method, &uri, Some(&key), body)).await;
            let documented = item[*method]["responses"]
                .get(reply.status.as_str())
                .is_some();
            assert!(
                documented,
                "{method} {uri}: {} is not documented",
                reply.status
            );
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
            if reply.status == StatusCode::NOT_FOUND {
                // The handler's own 404 (another client's id), not the router's.
                let code = reply.json["error_code"].as_str().unwrap();
                assert!(code.starts_with("RFA_"), "{method} {uri}: {}", reply.json);
            }
        }
    }
}

/// Routes of the specification that are not served yet (webhooks, the event stream, metrics):
/// once the router serves one, it must be documented too.
#[tokio::test]
async fn a_served_route_of_the_specification_is_documented() {
    let (router, _ctx, _dir) = app(&[]).await;
    let doc = document(&router).await;
    let (_client, key) = register(&router).await;
    let id = uuid::Uuid::new_v4().to_string();
    let candidates = [
        ("get", "/metrics"),
        ("post", "/v1/webhooks"),
        ("delete", "/v1/webhooks/{id}"),
        ("get", "/v1/webhooks/{id}/deliveries"),
        ("get", "/v1/jobs/{id}/events"),
    ];
    for (method, path) in candidates {
        let uri = path.replace("{id}", &id);
        let res = tower::ServiceExt::oneshot(router.clone(), call(method, &uri, Some(&key), None))
            .await
            .unwrap();
        let status = res.status();
        // The router's own 404 is `NOT_FOUND`; a handler's 404 (an unknown id) has its own code.
        let served = status != StatusCode::NOT_FOUND || {
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            body["error_code"] != "NOT_FOUND"
        };
        if served {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is served ({status}) but not documented"
            );
        }
    }
}

#[tokio::test]
async fn schemas_carry_the_rules_the_validation_enforces() {
    let (router, _ctx, _dir) = app(&[]).await;
    let doc = document(&router).await;
    let submit = &doc["paths"]["/v1/jobs"]["post"];
    let body = resolve(
        &doc,
        &submit["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(body["additionalProperties"], false);
    assert_eq!(body["required"], json!(["work_kind"]));

    let kinds: BTreeSet<&str> = resolve(&doc, &body["properties"]["work_kind"])["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let submittable: BTreeSet<&str> = WorkKind::ALL
        .iter()
        .filter(|k| k.is_submittable())
        .map(|k| k.as_str())
        .collect();
    assert_eq!(kinds, submittable);
    assert!(!kinds.contains("PAYLOAD_INVALID"));
    assert!(kinds.contains("SUCCESS_FAST"));

    let attempts = &body["properties"]["max_attempts"];
    assert_eq!(attempts["minimum"], 1);
    assert_eq!(attempts["maximum"], 10);
    assert_eq!(body["properties"]["execution_at"]["format"], "date-time");
    let callback = &body["properties"]["callback"];
    assert_eq!(callback["format"], "uri");
    assert_eq!(callback["maxLength"], 2048);

    let parameters = submit["parameters"].as_array().unwrap();
    let idempotency = parameters
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    assert_eq!(idempotency["in"], "header");
    assert_eq!(idempotency["schema"]["maxLength"], 255);
    assert!(submit["responses"]["202"]["headers"]["Idempotency-Replayed"].is_object());
    // A submitted job links to the operations on it, by their operation ids.
    let links = submit["responses"]["202"]["links"].as_object().unwrap();
    for link in links.values() {
        let target = link["operationId"].as_str().unwrap();
        let found = doc["paths"].as_object().unwrap().values().any(|item| {
            METHODS
                .iter()
                .any(|m| item[*m]["operationId"].as_str() == Some(target))
        });
        assert!(found, "link to {target}");
        assert_eq!(link["parameters"]["id"], "$response.body#/data/job_id");
    }
    assert_eq!(links.len(), 4);
    for status in ["400", "409", "413", "422", "503"] {
        assert!(
            submit["responses"][status].is_object(),
            "POST /v1/jobs {status}"
        );
    }

    let list: BTreeSet<&str> = doc["paths"]["/v1/jobs"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "page",
        "per_page",
        "sort",
        "filter[state]",
        "filter[work_kind]",
        "filter[created_at][gte]",
        "filter[created_at][gt]",
        "filter[created_at][lte]",
        "filter[created_at][lt]",
    ] {
        assert!(list.contains(name), "GET /v1/jobs ?{name}");
    }

    let revoke = resolve(
        &doc,
        &doc["paths"]["/v1/clients/{id}/keys/revoke"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"],
    );
    assert_eq!(revoke["properties"]["key_id"]["maxLength"], 64);
    assert_eq!(revoke["required"], json!(["key_id"]));
    // The bodies of `POST /v1/clients` and `POST /v1/clients/{id}/keys` may be left out (but
    // are never a JSON `null`).
    for path in ["/v1/clients", "/v1/clients/{id}/keys"] {
        let body = &doc["paths"][path]["post"]["requestBody"];
        assert_ne!(body["required"], true, "{path}");
        assert!(
            body["content"]["application/json"]["schema"]["$ref"].is_string(),
            "{path}: {body}"
        );
    }
}

/// The response schemas name exactly the fields the handlers send.
#[tokio::test]
async fn response_schemas_match_the_responses() {
    let (router, _ctx, _dir) = app(&[]).await;
    let doc = document(&router).await;
    let (client, key) = register(&router).await;
    let reply = send(
        &router,
        call(
            "post",
            "/v1/jobs",
            Some(&key),
            Some(json!({"work_kind": "SUCCESS_FAST"})),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let keys = |value: &Value| -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    // Without a callback, the submission leaves out the callback's webhook and secret.
    let mut view = properties(&doc, "JobView");
    view.remove("callback_webhook_id");
    view.remove("callback_secret");
    assert_eq!(keys(&reply.json["data"]), view);
    let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();

    let hook = json!({"url": "https://93.184.215.14/in", "events": ["*"]});
    let reply = send(
        &router,
        call("post", "/v1/webhooks", Some(&key), Some(hook)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(
        keys(&reply.json["data"]),
        properties(&doc, "CreatedWebhook")
    );
    let reply = send(&router, call("get", "/v1/webhooks", Some(&key), None)).await;
    assert_eq!(
        keys(&reply.json["data"][0]),
        properties(&doc, "WebhookView")
    );

    let reply = send(&router, call("get", "/v1/jobs", Some(&key), None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        keys(&reply.json["data"][0]),
        properties(&doc, "JobListItem")
    );
    assert_eq!(keys(&reply.json["meta"]), properties(&doc, "PageMeta"));

    let reply = send(
        &router,
        call("get", &format!("/v1/jobs/{id}/report"), Some(&key), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(keys(&reply.json["data"]), properties(&doc, "Report"));
    assert_eq!(
        keys(&reply.json["data"]["events"][0]),
        properties(&doc, "EventView")
    );

    let reply = send(
        &router,
        call(
            "get",
            &format!("/v1/clients/{client}/keys"),
            Some(&key),
            None,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(keys(&reply.json["data"][0]), properties(&doc, "KeyInfo"));

    let reply = send(&router, call("get", "/v1/jobs/not-a-job", Some(&key), None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let mut sent = keys(&reply.json);
    assert!(
        !sent.contains("errors"),
        "only validation errors carry `errors`"
    );
    sent.insert("errors".to_owned());
    assert_eq!(sent, properties(&doc, "ErrorBody"));
}
