//! DataTable: a declarative list endpoint with pagination, sorting, filters and search.

use axum::Router;
use axum::extract::{RawQuery, State};
use core_db::Database;
use core_web::datatable::{Column, DataTable, DataTableBuilder, Filter, Row};
use core_web::{ApiResult, AppError};

// region: define
pub fn articles() -> DataTableBuilder {
    DataTable::table("articles")
        .column(Column::integer("id").sortable().filter(Filter::Eq))
        .column(
            Column::text("title")
                .sortable()
                .searchable()
                .filter(Filter::Like),
        )
        .column(Column::text("status").filter(Filter::Eq))
        .column(Column::integer("views").sortable().filter(Filter::Range))
        .column(
            Column::timestamp("published_at")
                .sortable()
                .filter(Filter::Range),
        )
        .default_sort("-published_at")
        .per_page(20)
        .max_per_page(100)
}
// endregion: define

// region: mount
pub fn routes(db: Database) -> Router {
    let api = Router::new().route("/api/v1/articles", articles().into_route(db));
    core_web::middleware::stack(api, &core_web::config::HttpConfig::default())
}
// endregion: mount

// region: join
/// Columns from a join: `from_sql` takes the FROM clause, `Column::sql` the expression.
pub fn articles_with_authors() -> DataTableBuilder {
    DataTable::from_sql("articles a JOIN authors u ON u.id = a.author_id")
        .column(Column::integer("id").sql("a.id").sortable())
        .column(Column::text("title").sql("a.title").searchable())
        .column(
            Column::text("author")
                .sql("u.name")
                .sortable()
                .searchable()
                .filter(Filter::Eq),
        )
        .default_sort("id")
}
// endregion: join

// region: handler
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub articles: DataTable, // built once, shared by every request
}

/// The listing inside your own handler: check access first, or add to the rows.
async fn list_articles(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Vec<Row>> {
    let query = state.articles.parse(query.as_deref())?; // 400 / 422 for a bad query string
    if query.per_page() > 50 {
        return Err(AppError::Forbidden(
            "Exports of more than 50 rows need the export role".into(),
        ));
    }
    let listing = state.articles.fetch(&state.db, &query).await?;
    Ok(listing.into_response())
}

pub fn custom_routes(db: Database) -> Result<Router, core_web::datatable::DefinitionError> {
    let state = AppState {
        db,
        articles: articles().build()?,
    };
    Ok(Router::new()
        .route("/articles", axum::routing::get(list_articles))
        .with_state(state))
}
// endregion: handler

// region: tracked
/// A large table: totals of requests without filters come from the table's row counter.
pub async fn large_table_routes(db: Database) -> core_db::Result<Router> {
    db.migrate().await?; // the framework tables, the counters among them
    db.track_row_count("articles").await?; // once per start is enough
    let articles = articles().tracked_row_count().into_route(db);
    Ok(Router::new().route("/api/v1/articles", articles))
}
// endregion: tracked

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    async fn db() -> Database {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        db.execute(
            "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO authors VALUES (1, 'Ada'), (2, 'Grace');
             CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, status TEXT NOT NULL,
                                    views INTEGER NOT NULL, published_at TEXT, author_id INTEGER NOT NULL);
             INSERT INTO articles VALUES
               (1, 'Caching in Rust', 'published', 1200, '2024-05-01T12:00:00Z', 1),
               (2, 'Draft: jobs',     'draft',       0, NULL,                   2),
               (3, 'Rust and SQL',    'published',  800, '2024-06-15T09:30:00Z', 2),
               (4, 'Tiered caches',   'published', 4100, '2024-07-02T18:00:00Z', 1);",
        )
        .await
        .expect("schema");
        db
    }

    async fn get(app: Router, uri: &str) -> (StatusCode, Value) {
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn the_documented_request_gets_the_documented_response() {
        let app = routes(db().await);
        // The page's curl command (snippets/shell/requests.sh, region `datatable-page`).
        let request = crate::curl::request("datatable-page");
        let (status, _, body) = crate::support::send(app.clone(), request).await;
        assert_eq!(status, StatusCode::OK);
        crate::support::assert_example(body, "datatable-page");

        let (_, body) = get(
            app.clone(),
            "/api/v1/articles?q=rust&filter[published_at][gte]=2024-06-01",
        )
        .await;
        assert_eq!(body["meta"]["total"], 1);
        assert_eq!(body["data"][0]["id"], 3);

        let (status, body) = get(app, "/api/v1/articles?sort=status").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        crate::support::assert_example(body, "datatable-invalid");
    }

    #[tokio::test]
    async fn tracked_totals_follow_writes() {
        let db = db().await;
        let app = large_table_routes(db.clone()).await.expect("routes");
        let (status, body) = get(app.clone(), "/api/v1/articles").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["meta"]["total"], 4);
        db.execute("DELETE FROM articles WHERE status = 'draft'")
            .await
            .expect("delete");
        let (_, body) = get(app.clone(), "/api/v1/articles").await;
        assert_eq!(body["meta"]["total"], 3);
        let (_, body) = get(app, "/api/v1/articles?filter[views][gte]=1000").await;
        assert_eq!(body["meta"]["total"], 2);
    }

    #[tokio::test]
    async fn joins_and_custom_handlers_work() {
        let db = db().await;
        let table = articles_with_authors().build().expect("valid definition");
        let listing = table
            .fetch(
                &db,
                &table.parse(Some("filter[author]=Ada")).expect("query"),
            )
            .await
            .expect("listing");
        assert_eq!(listing.meta.total, 2);

        let app = custom_routes(db).expect("valid definition");
        let (status, _) = get(app.clone(), "/articles?per_page=10").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = get(app, "/articles?per_page=80").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
