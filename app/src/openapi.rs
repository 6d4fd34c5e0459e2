//! `GET /openapi.json`: the OpenAPI 3.1 document of ForgeRun's HTTP API, generated from the code.
//!
//! Where each part comes from:
//!
//! - **paths and operations**: the `#[utoipa::path]` annotation of each handler. The routes are
//!   registered from those same annotations ([`routes::table`]), so a route that is served is
//!   documented and the other way round;
//! - **request and response bodies**: `ToSchema` derived on the handlers' types ([`SubmitJob`],
//!   [`JobView`], [`Report`], [`IssuedKey`], …), with the limits the validation enforces; the
//!   success envelope `{"data", "message"?, "meta"?}` is described by the `*Envelope` types
//!   below, and the framework's error bodies ([`ErrorBody`], [`ProblemDetails`]) and pagination
//!   figures ([`PageMeta`]) by schemas written here;
//! - **what the layers add**, from where a route sits in the table: every operation of the
//!   authenticated group gets the bearer security requirement, its 401/403/429 answers and the
//!   `RateLimit-Policy`/`RateLimit` headers; every operation gets the middleware stack's 408 and
//!   500.
//!
//! Every error response offers `application/json` ([`ErrorBody`]) and, for clients that send
//! `Accept: application/problem+json`, RFC 9457 problem details ([`ProblemDetails`]).
//!
//! ```
//! let document = app::openapi::document();
//! assert!(document.paths.paths.contains_key("/v1/jobs/{id}/cancel"));
//! ```
//!
//! [`SubmitJob`]: crate::routes::jobs::SubmitJob
//! [`JobView`]: crate::routes::jobs::JobView
//! [`Report`]: crate::routes::jobs::Report
//! [`IssuedKey`]: crate::auth::IssuedKey

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, Object, ObjectBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr, Schema};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};

use crate::auth::{IssuedKey, KeyInfo, RenewedKey};
use crate::jobs::{State, WorkKind};
use crate::routes::health::{Check, Health};
use crate::routes::jobs::{JobView, Report};
use crate::routes::{self, Table};

/// The name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

/// The parts of the document that are not paths: information, shared schemas, the security
/// scheme. [`document`] adds the paths from the route table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ForgeRun",
        description = "ForgeRun, the Rustforge example application: a job-execution service. \
            Clients register, get API keys and submit jobs of synthetic work that run through a \
            state machine, with scheduling, retries, cancel, idempotent submission and a report \
            per job."
    ),
    components(schemas(
        ErrorBody,
        ProblemDetails,
        PageMeta,
        JobListItem,
        WorkKindName,
        SubmittableWorkKind,
        JobState,
        Outcome,
        EventType,
        EventTypeOrAll,
        DeliveryOutcome,
        DeliveryListItem,
        JobEventStreamItem,
        crate::routes::jobs::EventView
    )),
    modifiers(&Security),
    tags(
        (name = "operations", description = "Liveness, readiness, stored files, this document"),
        (name = "clients", description = "Clients and their API keys"),
        (name = "jobs", description = "Jobs: submit, list, read, cancel, retry, report"),
        (name = "webhooks", description = "Webhooks: where job events are delivered, signed (Standard Webhooks), and their delivery attempts"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme (`Authorization: Bearer frk_…`) to the components.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("frk_ API key")
                    .description(Some(
                        "An API key of the client, `frk_` + 32 random bytes in base62 + a checksum",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document: [`ApiDoc`] with every route of [`routes::table`] and what the layers of
/// each group add (see the [module docs](self)).
pub fn document() -> Document {
    let Table {
        public,
        authenticated,
    } = routes::table();
    let (_, mut authenticated) = authenticated.split_for_parts();
    for item in authenticated.paths.paths.values_mut() {
        for operation in operations(item) {
            authenticate(operation);
        }
    }
    let (_, public) = public.split_for_parts();
    let mut document = ApiDoc::openapi();
    document.merge(public);
    document.merge(authenticated);
    // Catch-all segments (`{*key}`) are plain path parameters in OpenAPI.
    document.paths.paths = std::mem::take(&mut document.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            let responses = &mut operation.responses.responses;
            responses.append(&mut StackErrors::responses());
            optional_body(operation);
        }
    }
    document
}

/// An optional body (`request_body = Option<T>`) is one that may be left out, not a JSON
/// `null`: its schema becomes `T` itself, the body stays not required.
fn optional_body(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    if matches!(body.required, Some(utoipa::openapi::Required::True)) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let mut not_null = one_of.items.iter().filter(|item| !is_null(item));
            if let (Some(schema), None) = (not_null.next(), not_null.next()) {
                content.schema = Some(schema.clone());
            }
        }
    }
}

/// Whether `schema` is `{"type": "null"}`.
fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::new(Type::Null))
}

/// The document as JSON, as `GET /openapi.json` serves it.
///
/// utoipa 5 writes a link's target as `operation_id`; OpenAPI names it `operationId` (and
/// `operationRef`), so the link objects are corrected here.
pub fn document_json() -> serde_json::Value {
    let mut value =
        serde_json::to_value(document()).expect("an OpenAPI document always serializes");
    let operations = value["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let responses = operation
            .get_mut("responses")
            .and_then(|r| r.as_object_mut())
            .into_iter()
            .flat_map(|r| r.values_mut());
        for response in responses {
            let links = response
                .get_mut("links")
                .and_then(|l| l.as_object_mut())
                .into_iter()
                .flat_map(|l| l.values_mut())
                .filter_map(|link| link.as_object_mut());
            for link in links {
                for (from, to) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                ] {
                    if let Some(target) = link.remove(from) {
                        link.insert(to.to_owned(), target);
                    }
                }
            }
        }
    }
    // JSON Schema's `contentSchema` (utoipa has no builder for it): what an event's `data`
    // holds once parsed.
    if let Some(data) = value
        .pointer_mut("/components/schemas/JobEventStreamItem/properties/data")
        .and_then(|d| d.as_object_mut())
    {
        data.insert(
            "contentSchema".to_owned(),
            serde_json::json!({"$ref": "#/components/schemas/EventView"}),
        );
    }
    value
}

/// The document as served, rendered once.
static JSON: LazyLock<String> = LazyLock::new(|| document_json().to_string());

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub async fn serve() -> Response {
    let mut response = JSON.as_str().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Every operation of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// What [`auth::require`](crate::auth::require) and the per-client rate limit add to an
/// operation: the security requirement, 401/403/429, and the `RateLimit` headers on its
/// answers.
fn authenticate(operation: &mut Operation) {
    operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
    let responses = &mut operation.responses.responses;
    responses.append(&mut AuthErrors::responses());
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            for (name, header) in rate_limit_headers() {
                response.headers.entry(name).or_insert(header);
            }
        }
    }
}

/// `RateLimit-Policy` and `RateLimit` (IETF draft `draft-ietf-httpapi-ratelimit-headers`).
fn rate_limit_headers() -> [(String, utoipa::openapi::header::Header); 2] {
    [
        (
            "RateLimit-Policy".to_owned(),
            header_of(
                "The client's limit: `\"default\";q=LIMIT;w=WINDOW_SECONDS` (absent when the \
                 rate limiter's store did not answer)",
            ),
        ),
        (
            "RateLimit".to_owned(),
            header_of(
                "What is left: `\"default\";r=REMAINING;t=SECONDS_TO_RESET` (absent when the \
                 rate limiter's store did not answer)",
            ),
        ),
    ]
}

/// A string header with a description.
fn header_of(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(String::schema())
        .description(Some(description))
        .build()
}

/// An error response: [`ErrorBody`] as JSON, [`ProblemDetails`] as problem+json.
pub fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemDetails")))
                .build(),
        )
}

/// Declares a set of error responses: a type whose [`IntoResponses`] gives each status with
/// its description (and headers).
macro_rules! errors {
    ($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal $([$($header:literal: $header_doc:literal),*])?,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
                BTreeMap::from([$((
                    $status.to_owned(),
                    RefOr::T(
                        error_response($description)
                            $($(.header($header, header_of($header_doc)))*)?
                            .build(),
                    ),
                ),)*])
            }
        }
    };
}

errors!(
    /// What the authentication layer and the rate limit answer, on every authenticated route.
    AuthErrors {
        "401" => "No, malformed or unknown key (`RFA_AUTH_INVALID_CREDENTIALS`), or an expired key (`RFA_AUTH_TOKEN_EXPIRED`)"
            ["WWW-Authenticate": "`Bearer` challenge"],
        "403" => "The key was revoked (`RFA_AUTH_API_KEY_DISABLED`)",
        "429" => "Past the client's rate limit (`RFA_REQUEST_RATE_LIMITED`)"
            ["Retry-After": "Seconds to wait before trying again"],
    }
);

errors!(
    /// What the middleware stack may answer on any route.
    StackErrors {
        "408" => "The request took longer than the configured timeout (`REQUEST_TIMEOUT`)",
        "500" => "An unexpected error; details only in the server's log (`INTERNAL_ERROR`)",
    }
);

errors!(
    /// What a JSON request body may be refused with.
    BodyErrors {
        "400" => "The body is not JSON, is malformed, or a field has the wrong type (`BAD_REQUEST`)",
        "413" => "The body is larger than the configured limit (`PAYLOAD_TOO_LARGE`)",
        "422" => "A field breaks a rule; `errors` names each field (`VALIDATION_ERROR`)",
    }
);

errors!(
    /// 404 for a job id that does not exist or belongs to another client.
    JobNotFound {
        "404" => "No job with this id for this client (`RFA_JOB_NOT_FOUND`)",
    }
);

errors!(
    /// 404 for a webhook id that does not exist or belongs to another client.
    WebhookNotFound {
        "404" => "No webhook with this id for this client (`RFA_WEBHOOK_NOT_FOUND`)",
    }
);

errors!(
    /// 404 for a client id other than the caller's.
    ClientNotFound {
        "404" => "The path names another client than the caller's (`RFA_CLIENT_NOT_FOUND`)",
    }
);

/// Declares a success envelope `{"data": T, "message"?: string}` for one payload type.
macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident($data:ty)) => {
        $(#[$doc])*
        #[derive(Debug, ToSchema)]
        pub struct $name {
            /// The payload.
            pub data: $data,
            /// A message for people, in the request's locale; left out when there is none.
            #[schema(nullable = false)]
            pub message: Option<String>,
        }
    };
}

envelope!(
    /// `{"data": Health}`.
    HealthEnvelope(Health)
);
envelope!(
    /// `{"data": [Check]}`.
    ReadyEnvelope(Vec<Check>)
);
envelope!(
    /// `{"data": JobView}`.
    JobEnvelope(JobView)
);
envelope!(
    /// `{"data": Report}`.
    ReportEnvelope(Report)
);
envelope!(
    /// `{"data": IssuedKey}`.
    IssuedKeyEnvelope(IssuedKey)
);
envelope!(
    /// `{"data": RenewedKey}`.
    RenewedKeyEnvelope(RenewedKey)
);
envelope!(
    /// `{"data": KeyInfo}`.
    KeyInfoEnvelope(KeyInfo)
);
envelope!(
    /// `{"data": [KeyInfo]}`.
    KeyListEnvelope(Vec<KeyInfo>)
);

envelope!(
    /// `{"data": CreatedWebhook}`.
    CreatedWebhookEnvelope(crate::routes::webhooks::CreatedWebhook)
);
envelope!(
    /// `{"data": WebhookView}`.
    WebhookEnvelope(crate::routes::webhooks::WebhookView)
);
envelope!(
    /// `{"data": [WebhookView]}`.
    WebhookListEnvelope(Vec<crate::routes::webhooks::WebhookView>)
);

/// One page of `GET /v1/webhooks/{id}/deliveries`: `{"data": [DeliveryListItem], "meta":
/// PageMeta}`.
#[derive(Debug, ToSchema)]
pub struct DeliveryListEnvelope {
    /// The attempts of the page.
    pub data: Vec<DeliveryListItem>,
    /// Page, page size, total and last page.
    #[schema(value_type = PageMeta)]
    pub meta: serde_json::Value,
}

/// One delivery attempt: the columns of its list definition.
#[derive(Debug, ToSchema)]
pub struct DeliveryListItem {
    /// The attempt's id.
    #[schema(format = Uuid)]
    pub delivery_id: String,
    /// The event delivered (the `webhook-id` header the receiver saw).
    #[schema(format = Uuid)]
    pub event_id: String,
    /// Its type.
    #[schema(value_type = EventType)]
    pub event_type: String,
    /// 1 for the event's first attempt.
    pub attempt: i64,
    /// What became of the attempt.
    #[schema(value_type = DeliveryOutcome)]
    pub outcome: String,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i64>,
    /// How long the attempt took.
    pub duration_ms: i64,
    /// What went wrong.
    pub error: Option<String>,
    /// When the next attempt is due (`retrying` only).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_retry_at: Option<String>,
    /// When the attempt was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
}

/// One page of `GET /v1/jobs`: `{"data": [JobListItem], "meta": PageMeta}`.
#[derive(Debug, ToSchema)]
pub struct JobListEnvelope {
    /// The jobs of the page.
    pub data: Vec<JobListItem>,
    /// Page, page size, total and last page.
    #[schema(value_type = PageMeta)]
    pub meta: serde_json::Value,
}

/// One row of `GET /v1/jobs`: the columns of its list definition.
#[derive(Debug, ToSchema)]
pub struct JobListItem {
    /// The job's id.
    #[schema(format = Uuid)]
    pub job_id: String,
    /// Its work kind.
    #[schema(value_type = WorkKindName)]
    pub work_kind: String,
    /// Its state.
    #[schema(value_type = JobState)]
    pub state: String,
    /// Attempts started.
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// SUCCEEDED, FAILED or CANCELED once final.
    #[schema(value_type = Option<Outcome>)]
    pub outcome: Option<String>,
    /// Submitted.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    /// Last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
    /// Not started before.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub execution_at: Option<String>,
    /// The callback URL.
    pub callback: Option<String>,
}

/// The framework's JSON error body (`core_web::ErrorBody`).
#[derive(Debug, Clone, Copy)]
pub struct ErrorBody;

impl PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("The JSON body of every error response"))
            .property(
                "message",
                text("A message for people, in the request's locale"),
            )
            .required("message")
            .property(
                "error_code",
                code("A stable machine-readable code such as `RFA_JOB_NOT_FOUND`"),
            )
            .required("error_code")
            .property("errors", field_errors())
            .property(
                "request_id",
                nullable_text("The request id, also in `x-request-id`"),
            )
            .required("request_id")
            .build()
            .into()
    }
}

impl ToSchema for ErrorBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorBody")
    }
}

/// RFC 9457 problem details (`core_web::problem::ProblemDetails`), sent instead of
/// [`ErrorBody`] when the request's `Accept` prefers `application/problem+json`.
#[derive(Debug, Clone, Copy)]
pub struct ProblemDetails;

impl PartialSchema for ProblemDetails {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("An error as RFC 9457 problem details"))
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::Custom("uri-reference".to_owned())))
                    .description(Some("The problem type; `about:blank`")),
            )
            .required("type")
            .property("title", text("The status's reason phrase"))
            .required("title")
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(400))
                    .maximum(Some(599))
                    .description(Some("The HTTP status")),
            )
            .required("status")
            .property(
                "detail",
                text("The error's message, in the request's locale"),
            )
            .required("detail")
            .property("instance", text("The request's path"))
            .property(
                "code",
                code("The stable machine-readable code (`error_code`)"),
            )
            .required("code")
            .property("errors", field_errors())
            .property(
                "request_id",
                nullable_text("The request id, also in `x-request-id`"),
            )
            .required("request_id")
            .build()
            .into()
    }
}

impl ToSchema for ProblemDetails {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ProblemDetails")
    }
}

/// The pagination figures of a list (`core_web::datatable::PageMeta`).
#[derive(Debug, Clone, Copy)]
pub struct PageMeta;

impl PartialSchema for PageMeta {
    fn schema() -> RefOr<Schema> {
        let count = |description: &str, minimum: u64| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(minimum))
                .description(Some(description))
        };
        ObjectBuilder::new()
            .description(Some("Pagination figures"))
            .property("page", count("The 1-based page number", 1))
            .required("page")
            .property("per_page", count("Rows per page, after capping", 1))
            .required("per_page")
            .property(
                "total",
                count("Rows matching the filters, over all pages", 0),
            )
            .required("total")
            .property("last_page", count("The last page number (1 when empty)", 1))
            .required("last_page")
            .build()
            .into()
    }
}

impl ToSchema for PageMeta {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PageMeta")
    }
}

/// A string with a description.
fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

/// A string or `null`, with a description.
fn nullable_text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(description))
}

/// An error code: `SCREAMING_SNAKE_CASE`.
fn code(description: &str) -> ObjectBuilder {
    text(description).pattern(Some("^[A-Z][A-Z0-9_]*$"))
}

/// Field path → messages.
fn field_errors() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Field path (`items[0].name`) → messages; present for validation failures",
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Array(
            ArrayBuilder::new().items(String::schema()).build(),
        )))))
}

/// A string schema that is one of `values`.
fn one_of_strings(values: Vec<&'static str>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .build()
}

/// Declares a named string schema whose values come from the code.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident = $schema_name:literal, $description:literal, $values:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                one_of_strings($values, $description).into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($schema_name)
            }
        }
    };
}

names!(
    /// Every work kind of the catalog ([`WorkKind::ALL`]).
    WorkKindName = "WorkKind",
    "A work kind of the catalog",
    WorkKind::ALL.iter().map(|k| k.as_str()).collect()
);

names!(
    /// The work kinds `POST /v1/jobs` accepts: the catalog less the ones refused at submission
    /// ([`WorkKind::is_submittable`]).
    SubmittableWorkKind = "SubmittableWorkKind",
    "The work to do: a work kind of the catalog that can be submitted",
    WorkKind::ALL
        .iter()
        .filter(|k| k.is_submittable())
        .map(|k| k.as_str())
        .collect()
);

names!(
    /// A job state ([`State::ALL`]).
    JobState = "JobState",
    "A job state",
    State::ALL.iter().map(|s| s.as_str()).collect()
);

names!(
    /// A final state: a finished job's outcome.
    Outcome = "Outcome",
    "SUCCEEDED, FAILED or CANCELED",
    State::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect()
);

names!(
    /// An event type: a job reached a state ([`State::event_name`]).
    EventType = "EventType",
    "An event type: job.created, job.queued, …",
    State::ALL.iter().map(|s| s.event_name()).collect()
);

names!(
    /// What a webhook may subscribe to: an event type, or `*` for all.
    EventTypeOrAll = "EventTypeOrAll",
    "An event type, or * for all of them",
    std::iter::once("*")
        .chain(State::ALL.iter().map(|s| s.event_name()))
        .collect()
);

names!(
    /// What became of one delivery attempt.
    DeliveryOutcome = "DeliveryOutcome",
    "delivered (a 2xx); retrying (another attempt is due); failed (the last attempt, or the message gave up); gone (410: the webhook is disabled); refused (the address is not allowed)",
    vec!["delivered", "retrying", "failed", "gone", "refused"]
);

/// One event of `GET /v1/jobs/{id}/events` (OpenAPI 3.1 describes each event of a
/// `text/event-stream` with the response's schema): its `id:`, `event:` and `data:` fields.
#[derive(Debug, Clone, Copy)]
pub struct JobEventStreamItem;

impl PartialSchema for JobEventStreamItem {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("One server-sent event: a job's event"))
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(
                        utoipa::openapi::schema::KnownFormat::Uuid,
                    )))
                    .description(Some(
                        "The event's id: send it back as `Last-Event-ID` to resume after it",
                    )),
            )
            .property("event", EventType::schema())
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/json")
                    .description(Some("The event as JSON (an `EventView`)")),
            )
            .required("id")
            .required("event")
            .required("data")
            .into()
    }
}

impl ToSchema for JobEventStreamItem {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JobEventStreamItem")
    }
}

/// `SubmitJob.callback`: an `http://` or `https://` URL of at most 2,048 characters, or `null`.
pub fn callback_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(SchemaFormat::Custom("uri".to_owned())))
        .max_length(Some(2048))
        .pattern(Some("^https?://"))
        .description(Some(
            "A URL told of the job's events: `http://` or `https://`, at most 2,048 characters",
        ))
        .build()
}
