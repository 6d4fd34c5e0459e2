//! `DataTable` through an axum router with the middleware stack, the same behaviour on PostgreSQL
//! and SQLite: pagination, sorting, every filter, search, errors naming what is wrong, and
//! injection strings in every parameter.

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::Request;
use axum::routing::get;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::{Reply, assert_error, send};
use core_db::Database;
use core_web::ApiResult;
use core_web::config::HttpConfig;
use core_web::datatable::{Column, DataTable, DataTableBuilder, Filter, Row};
use serde_json::{Value, json};

/// Keeps the test database alive.
#[allow(dead_code)]
enum Guard {
    Postgres(test_support::TestPostgres),
    Sqlite(test_support::TestSqlite),
}

struct Fixture {
    db: Database,
    app: Router,
    _guard: Guard,
}

struct Person {
    id: i64,
    name: String,
    email: Option<String>,
    age: Option<i32>,
    score: Option<f64>,
    active: bool,
    team_id: i32,
    created_at: DateTime<Utc>,
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s)
        .single()
        .expect("valid time")
}

/// name, email, age, score, active, created_at.
type Special = (
    &'static str,
    Option<&'static str>,
    Option<i32>,
    Option<f64>,
    bool,
    DateTime<Utc>,
);

/// 30 people: nine with awkward names, then `Person 10` … `Person 30`.
fn people() -> Vec<Person> {
    let special: [Special; 9] = [
        (
            "Ada Lovelace",
            Some("ada@example.com"),
            Some(36),
            Some(9.5),
            true,
            at(2024, 1, 1, 10, 0, 0),
        ),
        (
            "Alan Turing",
            Some("alan@example.com"),
            Some(41),
            Some(8.25),
            true,
            at(2024, 1, 2, 10, 0, 0),
        ),
        (
            "Grace Hopper",
            Some("grace@navy.example"),
            Some(85),
            Some(9.0),
            false,
            at(2024, 1, 3, 10, 0, 0),
        ),
        (
            "100% Pure",
            None,
            None,
            None,
            false,
            at(2024, 1, 4, 10, 0, 0),
        ),
        (
            "under_score",
            None,
            Some(30),
            Some(1.5),
            true,
            at(2024, 1, 5, 23, 59, 59),
        ),
        (
            "back\\slash",
            None,
            Some(31),
            Some(2.5),
            false,
            at(2024, 1, 6, 0, 0, 0),
        ),
        (
            "bang!",
            None,
            Some(32),
            Some(3.5),
            true,
            at(2024, 1, 7, 12, 30, 0) + TimeDelta::milliseconds(250),
        ),
        (
            "Zoë Ünïcode",
            Some("zoe@example.com"),
            Some(33),
            Some(4.5),
            false,
            at(2024, 1, 8, 10, 0, 0),
        ),
        (
            "日本語の名前",
            None,
            Some(34),
            Some(5.5),
            true,
            at(2024, 1, 9, 10, 0, 0),
        ),
    ];
    let mut out: Vec<Person> = special
        .into_iter()
        .enumerate()
        .map(
            |(i, (name, email, age, score, active, created_at))| Person {
                id: i as i64 + 1,
                name: name.to_owned(),
                email: email.map(str::to_owned),
                age,
                score,
                active,
                team_id: 1 + (i as i32 % 2),
                created_at,
            },
        )
        .collect();
    for i in 10..=30_i64 {
        out.push(Person {
            id: i,
            name: format!("Person {i}"),
            email: Some(format!("person{i}@corp.example")),
            age: Some(20 + i as i32),
            score: Some(i as f64 * 0.5),
            active: i % 2 == 0,
            team_id: 1 + (i as i32 % 2),
            created_at: at(2024, 2, 1, 0, 0, 0) + TimeDelta::hours(i),
        });
    }
    out
}

fn people_table() -> DataTableBuilder {
    DataTable::table("people")
        .column(Column::integer("id").sortable().filter(Filter::Eq))
        .column(
            Column::text("name")
                .sortable()
                .searchable()
                .filters([Filter::Eq, Filter::Like]),
        )
        .column(Column::text("email").searchable().filter(Filter::Eq))
        .column(
            Column::integer("age")
                .sortable()
                .filters([Filter::Eq, Filter::Range]),
        )
        .column(Column::float("score").sortable().filter(Filter::Range))
        .column(Column::boolean("active").sortable().filter(Filter::Eq))
        .column(
            Column::timestamp("created_at")
                .sortable()
                .filters([Filter::Eq, Filter::Range]),
        )
        .default_sort("-created_at")
        .key("id")
        .per_page(10)
        .max_per_page(25)
}

/// The people of one team, through a handler of the application's own with `where_eq`.
async fn team_one(
    State((db, table)): State<(Database, DataTable)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Vec<Row>> {
    let query = table.parse(query.as_deref())?.where_eq("team_id", 1);
    Ok(table.fetch(&db, &query).await?.into_response())
}

fn router(db: &Database) -> Router {
    let people = people_table().build().expect("valid definition");
    let joined = DataTable::from_sql("people p JOIN teams t ON t.id = p.team_id")
        .column(Column::integer("id").sql("p.id").sortable())
        .column(Column::text("name").sql("p.name").searchable())
        .column(
            Column::text("team")
                .sql("t.name")
                .sortable()
                .searchable()
                .filter(Filter::Eq),
        )
        .default_sort("id");
    let bare = DataTable::table("people").column(Column::integer("id"));
    let team_one_route = Router::new()
        .route("/team-one", get(team_one))
        .with_state((db.clone(), people.clone()));
    core_web::middleware::stack(
        Router::new()
            .route("/people", people.route(db.clone()))
            .route("/joined", joined.into_route(db.clone()))
            .route("/bare", bare.into_route(db.clone()))
            .merge(team_one_route),
        &HttpConfig::default(),
    )
}

const POSTGRES_SCHEMA: [&str; 4] = [
    "CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE people (id BIGINT PRIMARY KEY, name TEXT NOT NULL, email VARCHAR(200), \
     age INTEGER, score DOUBLE PRECISION, active BOOLEAN NOT NULL, \
     team_id INTEGER NOT NULL REFERENCES teams (id), created_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE canary (id INTEGER NOT NULL)",
    "INSERT INTO canary (id) VALUES (1)",
];

const SQLITE_SCHEMA: [&str; 4] = [
    "CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email VARCHAR(200), \
     age INTEGER, score REAL, active BOOLEAN NOT NULL, \
     team_id INTEGER NOT NULL REFERENCES teams (id), created_at TEXT NOT NULL)",
    "CREATE TABLE canary (id INTEGER NOT NULL)",
    "INSERT INTO canary (id) VALUES (1)",
];

const TEAMS: [(i32, &str); 2] = [(1, "Analytical Engines"), (2, "Compilers")];

async fn postgres(test: &str) -> Option<Fixture> {
    let pg = test_support::postgres(test).await?;
    let pool = pg.pool.clone();
    for statement in POSTGRES_SCHEMA {
        sqlx::query(statement).execute(&pool).await.expect("schema");
    }
    for (id, name) in TEAMS {
        sqlx::query("INSERT INTO teams (id, name) VALUES ($1, $2)")
            .bind(id)
            .bind(name)
            .execute(&pool)
            .await
            .expect("team");
    }
    for p in people() {
        sqlx::query(
            "INSERT INTO people (id, name, email, age, score, active, team_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(p.id)
        .bind(p.name)
        .bind(p.email)
        .bind(p.age)
        .bind(p.score)
        .bind(p.active)
        .bind(p.team_id)
        .bind(p.created_at)
        .execute(&pool)
        .await
        .expect("person");
    }
    let db = Database::Postgres(pool);
    Some(Fixture {
        app: router(&db),
        db,
        _guard: Guard::Postgres(pg),
    })
}

async fn sqlite(_test: &str) -> Option<Fixture> {
    let lite = test_support::sqlite().await;
    let pool = lite.pool.clone();
    for statement in SQLITE_SCHEMA {
        sqlx::query(statement).execute(&pool).await.expect("schema");
    }
    for (id, name) in TEAMS {
        sqlx::query("INSERT INTO teams (id, name) VALUES (?, ?)")
            .bind(id)
            .bind(name)
            .execute(&pool)
            .await
            .expect("team");
    }
    for p in people() {
        let query = sqlx::query(
            "INSERT INTO people (id, name, email, age, score, active, team_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id)
        .bind(p.name)
        .bind(p.email)
        .bind(p.age)
        .bind(p.score)
        .bind(p.active)
        .bind(p.team_id);
        // The first rows as sqlx writes a `DateTime<Utc>` (`2024-01-01 10:00:00+00:00`), the
        // rest as `CURRENT_TIMESTAMP` does (`2024-02-01 10:00:00`, UTC without an offset).
        let query = if p.id < 10 {
            query.bind(p.created_at)
        } else {
            query.bind(p.created_at.format("%Y-%m-%d %H:%M:%S").to_string())
        };
        query.execute(&pool).await.expect("person");
    }
    let db = Database::Sqlite(pool);
    Some(Fixture {
        app: router(&db),
        db,
        _guard: Guard::Sqlite(lite),
    })
}

/// Percent-encodes everything but unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Fixture {
    async fn get(&self, uri: &str) -> Reply {
        let req = Request::get(uri).body(Body::empty()).expect("request");
        send(&self.app, req).await
    }

    /// A 200 listing: the rows and the meta.
    async fn list(&self, uri: &str) -> (Vec<Value>, Value) {
        let reply = self.get(uri).await;
        assert_eq!(reply.status.as_u16(), 200, "{uri}: {}", reply.json);
        let rows = reply.json["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{uri}: data is an array: {}", reply.json))
            .clone();
        (rows, reply.json["meta"].clone())
    }

    async fn ids(&self, uri: &str) -> Vec<i64> {
        let (rows, _) = self.list(uri).await;
        rows.iter().map(|r| r["id"].as_i64().expect("id")).collect()
    }

    /// A 422 whose errors name `field` with a message containing every one of `needles`.
    async fn rejects(&self, uri: &str, field: &str, needles: &[&str]) {
        let reply = self.get(uri).await;
        let body = assert_error(&reply, 422, "VALIDATION_ERROR");
        let messages = body["errors"][field]
            .as_array()
            .unwrap_or_else(|| panic!("{uri}: errors name {field:?}: {body}"));
        let text = messages
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | ");
        for needle in needles {
            assert!(
                text.contains(needle),
                "{uri}: message for {field:?} names {needle:?}: {text}"
            );
        }
    }

    /// A count read with plain SQL, the reference for `meta.total`.
    async fn count(&self, sql: &str) -> i64 {
        match &self.db {
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("count")
    }

    async fn people_left(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM people").await
    }

    async fn canary_left(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM canary").await
    }

    async fn execute(&self, sql: &str) {
        match &self.db {
            Database::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Database::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .expect("statement");
    }
}

/// The behavioural cases, each run on both backends.
mod cases {
    use super::*;

    pub async fn pages_carry_meta(fx: &Fixture) {
        let (rows, meta) = fx.list("/people?sort=id&per_page=7&page=2").await;
        let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, (8..=14).collect::<Vec<_>>());
        assert_eq!(
            meta,
            json!({"page": 2, "per_page": 7, "total": 30, "last_page": 5})
        );

        let (rows, meta) = fx.list("/people?sort=id&per_page=7&page=5").await;
        assert_eq!(rows.len(), 2, "the last page holds the rest");
        assert_eq!(meta["last_page"], 5);

        let (rows, meta) = fx.list("/people?sort=id&per_page=7&page=9").await;
        assert!(rows.is_empty(), "past the last page: no rows");
        assert_eq!(
            meta,
            json!({"page": 9, "per_page": 7, "total": 30, "last_page": 5})
        );

        let (rows, meta) = fx.list("/people").await;
        assert_eq!(rows.len(), 10, "the definition's default page size");
        assert_eq!(
            meta,
            json!({"page": 1, "per_page": 10, "total": 30, "last_page": 3})
        );

        let (rows, meta) = fx.list("/people?page=&per_page=&sort=&q=").await;
        assert_eq!(rows.len(), 10, "empty values count as not given");
        assert_eq!(meta["page"], 1);

        let (rows, meta) = fx.list("/people?filter[name]=nobody").await;
        assert!(rows.is_empty());
        assert_eq!(
            meta,
            json!({"page": 1, "per_page": 10, "total": 0, "last_page": 1})
        );
    }

    pub async fn rows_are_typed_json(fx: &Fixture) {
        let (rows, _) = fx.list("/people?filter[id]=7").await;
        assert_eq!(
            rows,
            vec![json!({
                "id": 7, "name": "bang!", "email": null, "age": 32, "score": 3.5,
                "active": true, "created_at": "2024-01-07T12:30:00.250Z",
            })]
        );
        let (rows, _) = fx.list("/people?filter[id]=12").await;
        assert_eq!(rows[0]["created_at"], "2024-02-01T12:00:00Z");
        assert_eq!(rows[0]["active"], true);
        let (rows, _) = fx.list("/people?filter[id]=4").await;
        assert_eq!(rows[0]["age"], Value::Null);
        assert_eq!(rows[0]["score"], Value::Null);
    }

    pub async fn per_page_is_capped(fx: &Fixture) {
        let (rows, meta) = fx.list("/people?per_page=1000").await;
        assert_eq!(rows.len(), 25);
        assert_eq!(
            meta,
            json!({"page": 1, "per_page": 25, "total": 30, "last_page": 2})
        );
        let (rows, meta) = fx.list("/people?per_page=99999999999999").await;
        assert_eq!(rows.len(), 25);
        assert_eq!(meta["per_page"], 25);
    }

    pub async fn sorts_ascending_descending_and_by_default(fx: &Fixture) {
        assert_eq!(fx.ids("/people?sort=id&per_page=3").await, vec![1, 2, 3]);
        assert_eq!(
            fx.ids("/people?sort=-id&per_page=3").await,
            vec![30, 29, 28]
        );
        // Default: newest first.
        assert_eq!(fx.ids("/people?per_page=3").await, vec![30, 29, 28]);
        assert_eq!(
            fx.ids("/people?sort=created_at&per_page=3").await,
            vec![1, 2, 3]
        );
        // Multi-column: inactive first, then highest id; the key breaks no ties here.
        assert_eq!(
            fx.ids("/people?sort=active,-id&per_page=4").await,
            vec![29, 27, 25, 23]
        );
        assert_eq!(
            fx.ids("/people?sort=-active,id&per_page=4").await,
            vec![1, 2, 5, 7]
        );
        // Text.
        let (rows, _) = fx.list("/people?sort=name&per_page=2").await;
        assert_eq!(rows[0]["name"], "100% Pure");
        // NULLs last ascending, first descending, on both backends.
        let ids = fx.ids("/people?sort=age&per_page=25&page=2").await;
        assert_eq!(ids.last(), Some(&4), "the NULL age sorts last: {ids:?}");
        assert_eq!(fx.ids("/people?sort=-age&per_page=1").await, vec![4]);
        // Ties (equal scores do not occur, equal `active` do) are broken by the key.
        let ids = fx.ids("/people?sort=active&per_page=25").await;
        let inactive: Vec<i64> = ids.iter().copied().take(14).collect();
        let mut sorted = inactive.clone();
        sorted.sort_unstable();
        assert_eq!(inactive, sorted, "ties in key order");
    }

    pub async fn equality_filters(fx: &Fixture) {
        assert_eq!(fx.ids("/people?filter[age]=41&sort=id").await, vec![2, 21]);
        assert_eq!(fx.ids("/people?filter[age][eq]=85").await, vec![3]);
        assert_eq!(fx.ids("/people?filter[age]=%2B85").await, vec![3]);
        assert_eq!(
            fx.ids(&format!("/people?filter[name]={}", enc("Ada Lovelace")))
                .await,
            vec![1]
        );
        assert_eq!(
            fx.ids("/people?filter[name]=Ada+Lovelace").await,
            vec![1],
            "+ is a space"
        );
        assert!(
            fx.ids("/people?filter[name]=ada+lovelace").await.is_empty(),
            "equality is exact"
        );
        assert_eq!(
            fx.ids(&format!("/people?filter[name]={}", enc("日本語の名前")))
                .await,
            vec![9]
        );
        assert_eq!(
            fx.ids("/people?filter[email]=ada%40example.com").await,
            vec![1]
        );
        let inactive = fx
            .ids("/people?filter[active]=false&sort=id&per_page=25")
            .await;
        assert_eq!(inactive.len(), 14);
        assert_eq!(&inactive[..5], &[3, 4, 6, 8, 11]);
        let (_, meta) = fx.list("/people?filter[active]=1").await;
        assert_eq!(meta["total"], 16);
        assert_eq!(
            fx.ids("/people?filter[created_at]=2024-01-07T12:30:00.250Z")
                .await,
            vec![7]
        );
        // A date means the whole day.
        assert_eq!(
            fx.ids("/people?filter[created_at]=2024-01-05").await,
            vec![5]
        );
        assert_eq!(fx.ids("/people?filter[age]=36&sort=id").await, vec![1, 16]);
        assert_eq!(
            fx.ids("/people?filter[age]=36&filter[email]=ada%40example.com")
                .await,
            vec![1],
            "filters combine"
        );
        assert!(
            fx.ids("/people?filter[age]=85&filter[active]=true")
                .await
                .is_empty(),
            "filters combine"
        );
    }

    pub async fn like_filters(fx: &Fixture) {
        assert_eq!(fx.ids("/people?filter[name][like]=LOVE").await, vec![1]);
        assert_eq!(fx.ids("/people?filter[name][like]=%25").await, vec![4]);
        assert_eq!(fx.ids("/people?filter[name][like]=_").await, vec![5]);
        assert_eq!(fx.ids("/people?filter[name][like]=%5C").await, vec![6]);
        assert_eq!(fx.ids("/people?filter[name][like]=!").await, vec![7]);
        assert_eq!(
            fx.ids("/people?filter[name][like]=e_s").await,
            Vec::<i64>::new()
        );
        assert_eq!(
            fx.ids(&format!("/people?filter[name][like]={}", enc("本語")))
                .await,
            vec![9]
        );
        let (_, meta) = fx.list("/people?filter[name][like]=person").await;
        assert_eq!(meta["total"], 21);
    }

    pub async fn range_filters(fx: &Fixture) {
        assert_eq!(
            fx.ids("/people?filter[age][gte]=40&filter[age][lte]=45&sort=id")
                .await,
            vec![2, 20, 21, 22, 23, 24, 25]
        );
        assert_eq!(
            fx.ids("/people?filter[age][gt]=41&filter[age][lt]=44&sort=id")
                .await,
            vec![22, 23]
        );
        assert_eq!(
            fx.ids("/people?filter[score][gte]=9&sort=id").await,
            vec![1, 3, 18, 19, 20, 21, 22, 23, 24, 25]
        );
        assert_eq!(
            fx.ids("/people?filter[score][lt]=2.5&sort=id").await,
            vec![5]
        );
        // Timestamps: instants, offsets, and whole days.
        assert_eq!(
            fx.ids("/people?filter[created_at][gte]=2024-01-02T10:00:00Z&filter[created_at][lt]=2024-01-04T10:00:00Z&sort=id")
                .await,
            vec![2, 3]
        );
        assert_eq!(
            fx.ids("/people?filter[created_at][gte]=2024-01-02T12:00:00%2B02:00&filter[created_at][lte]=2024-01-02&sort=id")
                .await,
            vec![2],
            "an offset, and a date meaning the whole day"
        );
        assert_eq!(
            fx.ids("/people?filter[created_at][gt]=2024-01-05&filter[created_at][lt]=2024-01-07&sort=id")
                .await,
            vec![6],
            "gt a day starts the next day; lt a day ends before it"
        );
        assert_eq!(
            fx.ids("/people?filter[created_at][gte]=2024-02-01%2020:00:00&sort=id&per_page=25")
                .await,
            (20..=30).collect::<Vec<_>>()
        );
        let (_, meta) = fx.list("/people?filter[created_at][lte]=2024-01-31").await;
        assert_eq!(meta["total"], 9);
    }

    pub async fn search_covers_searchable_columns(fx: &Fixture) {
        assert_eq!(fx.ids("/people?q=hopper").await, vec![3]);
        assert_eq!(fx.ids("/people?q=NAVY").await, vec![3], "email is searched");
        assert_eq!(fx.ids("/people?q=EXAMPLE.COM&sort=id").await, vec![1, 2, 8]);
        assert_eq!(fx.ids("/people?q=+turing+").await, vec![2], "trimmed");
        assert_eq!(fx.ids(&format!("/people?q={}", enc("日本"))).await, vec![9]);
        assert_eq!(fx.ids("/people?q=%25").await, vec![4]);
        assert_eq!(
            fx.ids("/people?q=ada&filter[active]=false").await,
            Vec::<i64>::new()
        );
        let (_, meta) = fx.list("/people?q=corp&per_page=5").await;
        assert_eq!(
            meta,
            json!({"page": 1, "per_page": 5, "total": 21, "last_page": 5})
        );
    }

    pub async fn joins_and_application_conditions(fx: &Fixture) {
        let (rows, meta) = fx.list("/joined?filter[team]=Compilers&per_page=3").await;
        assert_eq!(meta["total"], 14);
        assert_eq!(
            rows[0],
            json!({"id": 2, "name": "Alan Turing", "team": "Compilers"})
        );
        assert_eq!(
            fx.ids("/joined?q=engines&sort=-id&per_page=2").await,
            vec![30, 28]
        );
        assert_eq!(fx.ids("/joined?sort=team,id&per_page=2").await, vec![1, 3]);

        let (rows, meta) = fx.list("/team-one?sort=id&per_page=3").await;
        assert_eq!(meta["total"], 16);
        let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, vec![1, 3, 5]);
        assert!(
            fx.ids("/team-one?filter[id]=2").await.is_empty(),
            "the application's condition cannot be widened by the request"
        );

        let (rows, meta) = fx.list("/bare?per_page=2").await;
        assert_eq!(rows.len(), 2);
        assert_eq!(meta["total"], 30);
        fx.rejects("/bare?q=x", "q", &["searchable"]).await;
        fx.rejects("/bare?sort=id", "sort", &["id", "not sortable"])
            .await;
    }

    pub async fn unknown_names_are_named(fx: &Fixture) {
        fx.rejects("/people?sort=nope", "sort", &["`nope`"]).await;
        fx.rejects("/people?sort=-nope,id,-also", "sort", &["`nope`", "`also`"])
            .await;
        fx.rejects("/people?sort=email", "sort", &["`email`", "not sortable"])
            .await;
        fx.rejects("/people?sort=id,-id", "sort", &["`id`"]).await;
        fx.rejects("/people?sort=id,,name", "sort", &["Empty"])
            .await;
        fx.rejects("/people?filter[nope]=1", "filter[nope]", &["`nope`"])
            .await;
        fx.rejects(
            "/people?filter[name][regex]=x",
            "filter[name][regex]",
            &["`regex`", "eq, like"],
        )
        .await;
        fx.rejects(
            "/people?filter[email][like]=x",
            "filter[email][like]",
            &["`email`", "`like`"],
        )
        .await;
        fx.rejects(
            "/people?filter[score]=1",
            "filter[score]",
            &["`score`", "`eq`"],
        )
        .await;
        fx.rejects(
            "/people?filter[name]]=x",
            "filter[name]]",
            &["filter[column]"],
        )
        .await;
        fx.rejects("/people?filter[name=x", "filter[name", &["filter[column]"])
            .await;
        fx.rejects("/people?filter=x", "filter", &["filter[column]"])
            .await;
        fx.rejects(
            "/people?filter[name][like][x]=x",
            "filter[name][like][x]",
            &["filter[column]"],
        )
        .await;
        // An unknown column is reported even with an empty value.
        fx.rejects("/people?filter[nope]=", "filter[nope]", &["`nope`"])
            .await;
        // Several problems at once are all reported.
        let reply = fx.get("/people?sort=nope&filter[zzz]=1&page=0").await;
        let body = assert_error(&reply, 422, "VALIDATION_ERROR");
        let errors = body["errors"].as_object().expect("errors");
        assert_eq!(errors.len(), 3, "{body}");
        // Parameters the list does not know are ignored.
        let (rows, _) = fx.list("/people?_=12345&other=x").await;
        assert_eq!(rows.len(), 10);
    }

    pub async fn bad_values_are_rejected(fx: &Fixture) {
        fx.rejects(
            "/people?filter[age]=abc",
            "filter[age]",
            &["`age`", "whole number"],
        )
        .await;
        fx.rejects(
            "/people?filter[age][gte]=1.5",
            "filter[age][gte]",
            &["`age`"],
        )
        .await;
        fx.rejects(
            "/people?filter[age]=99999999999999999999999",
            "filter[age]",
            &["`age`"],
        )
        .await;
        fx.rejects(
            "/people?filter[active]=maybe",
            "filter[active]",
            &["`active`"],
        )
        .await;
        fx.rejects(
            "/people?filter[score][gte]=NaN",
            "filter[score][gte]",
            &["`score`"],
        )
        .await;
        fx.rejects(
            "/people?filter[score][gte]=1e999",
            "filter[score][gte]",
            &["`score`"],
        )
        .await;
        fx.rejects(
            "/people?filter[created_at][gte]=yesterday",
            "filter[created_at][gte]",
            &["`created_at`"],
        )
        .await;
        fx.rejects(
            "/people?filter[created_at]=2024-02-30",
            "filter[created_at]",
            &["`created_at`"],
        )
        .await;
        for bad in ["0", "-1", "abc", "1.5", "99999999999999999999999"] {
            fx.rejects(&format!("/people?page={bad}"), "page", &["at least 1"])
                .await;
            fx.rejects(
                &format!("/people?per_page={bad}"),
                "per_page",
                &["at least 1"],
            )
            .await;
        }
        fx.rejects(
            "/people?page=9223372036854775807&per_page=10",
            "page",
            &["too large"],
        )
        .await;
        fx.rejects("/people?page=1&page=2", "page", &["more than once"])
            .await;
        fx.rejects(
            "/people?filter[age]=1&filter[age]=2",
            "filter[age]",
            &["more than once"],
        )
        .await;
        fx.rejects(&format!("/people?q={}", "a".repeat(1001)), "q", &["1000"])
            .await;
        fx.rejects("/people?filter[name]=a%00b", "filter[name]", &["NUL"])
            .await;

        // Malformed encoding is a 400 naming the parameter.
        for uri in [
            "/people?q=%zz",
            "/people?q=%",
            "/people?q=%FF",
            "/people?filter%5Bname=%E4%BD",
        ] {
            let reply = fx.get(uri).await;
            let body = assert_error(&reply, 400, "BAD_REQUEST");
            assert!(
                body["errors"].as_object().is_some_and(|e| !e.is_empty()),
                "{uri}: {body}"
            );
        }

        // Messages follow the request's locale.
        let req = Request::get("/people?sort=nope")
            .header("accept-language", "zh")
            .body(Body::empty())
            .expect("request");
        let reply = send(&fx.app, req).await;
        let body = assert_error(&reply, 422, "VALIDATION_ERROR");
        assert_eq!(body["errors"]["sort"][0], "未知的列 `nope`", "{body}");
    }

    /// A date before what PostgreSQL's `timestamptz` holds (4714-11-24 BC) is a 422 naming the
    /// field, never a database error; on PostgreSQL the earliest date it holds works.
    pub async fn dates_before_4713_bc_are_422s(fx: &Fixture) {
        for (query, field) in [
            (
                "filter[created_at][gte]=-5000-01-01",
                "filter[created_at][gte]",
            ),
            ("filter[created_at]=-4713-11-23", "filter[created_at]"),
            (
                "filter[created_at][lt]=-4713-11-23T23:59:59Z",
                "filter[created_at][lt]",
            ),
            (
                "filter[created_at][gt]=-9999-06-01T12:00",
                "filter[created_at][gt]",
            ),
            (
                "filter[created_at][lte]=-262000-01-01%2000:00:00",
                "filter[created_at][lte]",
            ),
        ] {
            fx.rejects(
                &format!("/people?{query}"),
                field,
                &["`created_at`", "-4713-11-24"],
            )
            .await;
        }
        // SQLite's date functions stop at year 0, so only PostgreSQL can compare this early.
        if !matches!(fx.db, Database::Postgres(_)) {
            return;
        }
        let all = fx.ids("/people?per_page=100").await;
        assert_eq!(
            fx.ids("/people?per_page=100&filter[created_at][gte]=-4713-11-24")
                .await,
            all
        );
        assert_eq!(
            fx.ids("/people?per_page=100&filter[created_at][gt]=-4713-11-24T00:00:00Z")
                .await,
            all
        );
        assert!(
            fx.ids("/people?filter[created_at][lt]=-4713-11-24")
                .await
                .is_empty()
        );
    }

    /// Strings that would break SQL built by splicing.
    fn payloads() -> Vec<String> {
        let mut out: Vec<String> = [
            "'; DROP TABLE people; --",
            "'; DROP TABLE canary; --",
            "\" OR 1=1",
            "\" OR \"\"=\"",
            "' OR '1'='1",
            "1 OR 1=1",
            "1; DELETE FROM people",
            "people\"; DROP TABLE people; --",
            "id\" DESC; DROP TABLE canary; --",
            "Robert'); DROP TABLE people;--",
            "%",
            "%%",
            "_",
            "\\",
            "\\'",
            "!",
            "'",
            "\"",
            "`",
            ";",
            "--",
            "/*",
            "$1",
            "?",
            ":name",
            "[",
            "]",
            "][",
            "filter[",
            "-",
            ",",
            "-id,",
            "0",
            "-1",
            "1e309",
            "NaN",
            "99999999999999999999999",
            "2024-01-01'; --",
            "ñ日本語🦀",
            "Zoë",
            "\u{202e}evil",
            "%27%20OR%201%3D1",
            "a\0b",
            " ",
        ]
        .map(str::to_owned)
        .to_vec();
        out.push("x".repeat(10_000));
        out.push("'".repeat(1_000));
        out.push("é".repeat(999));
        out
    }

    pub async fn injection_strings_never_reach_sql(fx: &Fixture) {
        let templates: [&str; 17] = [
            "page={}",
            "per_page={}",
            "sort={}",
            "sort=-{}",
            "sort=id,{}",
            "filter[{}]=1",
            "filter[{}][eq]=1",
            "filter[name][{}]=1",
            "filter[name]={}",
            "filter[name][like]={}",
            "filter[email]={}",
            "filter[age]={}",
            "filter[score][gte]={}",
            "filter[active]={}",
            "filter[created_at][lte]={}",
            "q={}",
            "{}=1",
        ];
        for payload in payloads() {
            for template in templates {
                let (before, after) = template.split_once("{}").expect("placeholder");
                // The payload goes in percent-encoded, as a client sends it; the brackets of the
                // template stay raw, as browsers send them.
                let uri = format!("/people?{before}{}{after}", enc(&payload));
                let reply = fx.get(&uri).await;
                let status = reply.status.as_u16();
                let shown: String = uri.chars().take(120).collect();
                assert!(
                    status == 200 || status == 422,
                    "{shown}: expected 200 or 422, got {status}: {}",
                    reply.json
                );
                let body = reply.json.to_string();
                assert!(
                    !body.contains("syntax") && !body.contains("SQL") && !body.contains("sqlx"),
                    "{shown}: no SQL error leaks: {body}"
                );
                if status == 422 {
                    assert_eq!(reply.json["error_code"], "VALIDATION_ERROR", "{shown}");
                    continue;
                }
                let rows = reply.json["data"].as_array().expect("data");
                let needle = payload.trim().to_lowercase();
                let contains = |row: &Value, column: &str| {
                    row[column]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(&needle))
                };
                match template {
                    "filter[name]={}" => {
                        assert!(
                            rows.iter().all(|r| r["name"] == payload.as_str()),
                            "{shown}: only exact matches: {body}"
                        );
                    }
                    "filter[email]={}" => assert!(rows.is_empty(), "{shown}: {body}"),
                    "filter[name][like]={}" => assert!(
                        rows.iter().all(|r| contains(r, "name")),
                        "{shown}: only rows containing the text: {body}"
                    ),
                    "q={}" => assert!(
                        rows.iter()
                            .all(|r| contains(r, "name") || contains(r, "email")),
                        "{shown}: only rows containing the text: {body}"
                    ),
                    _ => {}
                }
            }
        }
        assert_eq!(fx.people_left().await, 30, "no row was touched");
        assert_eq!(fx.canary_left().await, 1, "no table was dropped");
    }

    pub async fn counts_can_be_cached(fx: &Fixture) {
        let table = people_table()
            .cache_counts(std::time::Duration::from_secs(60))
            .build()
            .expect("valid");
        let query = table.parse(Some("per_page=5")).expect("valid query");
        let first = table.fetch(&fx.db, &query).await.expect("fetch");
        assert_eq!(first.meta.total, 30);
        fx.execute(
            "INSERT INTO people (id, name, active, team_id, created_at) \
             VALUES (31, 'Late', TRUE, 1, '2024-03-01 00:00:00')",
        )
        .await;
        let cached = table.fetch(&fx.db, &query).await.expect("fetch");
        assert_eq!(cached.meta.total, 30, "the kept total");
        assert_eq!(cached.rows[0]["id"], 31, "the rows are fresh");
        let filtered = table
            .fetch(&fx.db, &table.parse(Some("q=late")).expect("valid"))
            .await
            .expect("fetch");
        assert_eq!(filtered.meta.total, 1, "another filter counts afresh");
        table.forget_counts();
        let fresh = table.fetch(&fx.db, &query).await.expect("fetch");
        assert_eq!(fresh.meta.total, 31);
    }

    pub async fn tracked_totals_are_exact_and_fresh(fx: &Fixture) {
        fx.db.migrate().await.expect("framework migrations");
        assert_eq!(fx.db.track_row_count("people").await.expect("track"), 30);
        let table = people_table()
            .tracked_row_count()
            .cache_counts(std::time::Duration::from_secs(60))
            .build()
            .expect("valid");
        let total = |raw: &'static str| {
            let table = table.clone();
            async move {
                let query = table.parse(Some(raw)).expect("valid query");
                table.fetch(&fx.db, &query).await.expect("fetch").meta.total
            }
        };
        assert_eq!(total("per_page=5").await, 30);
        fx.execute(
            "INSERT INTO people (id, name, active, team_id, created_at) \
             VALUES (31, 'Late', TRUE, 1, '2024-03-01 00:00:00')",
        )
        .await;
        assert_eq!(
            total("per_page=5").await,
            31,
            "unfiltered totals are never kept"
        );
        assert_eq!(total("q=late").await, 1);
        assert_eq!(total("page=4&sort=name").await, 31, "sorting is no filter");
        let team_one = table.parse(None).expect("valid").where_eq("team_id", 1);
        let team_total = table
            .fetch(&fx.db, &team_one)
            .await
            .expect("fetch")
            .meta
            .total;
        let expected = fx
            .count("SELECT COUNT(*) FROM people WHERE team_id = 1")
            .await;
        assert!(expected < 31);
        assert_eq!(
            team_total,
            u64::try_from(expected).unwrap(),
            "an application condition is counted"
        );
        fx.execute("DELETE FROM people WHERE id = 31").await;
        assert_eq!(total("per_page=5").await, 30);

        if let Database::Postgres(pool) = &fx.db {
            // Skew the counter: unfiltered totals come from it, filtered ones are counted.
            sqlx::query(
                "INSERT INTO rustforge_row_counts (relid, n) VALUES ('people'::REGCLASS, 100)",
            )
            .execute(pool)
            .await
            .expect("skew");
            assert_eq!(total("per_page=5").await, 130);
            let active = fx.count("SELECT COUNT(*) FROM people WHERE active").await;
            assert_eq!(
                total("filter[active]=true").await,
                u64::try_from(active).unwrap()
            );
            fx.db.track_row_count("people").await.expect("re-seed");
            assert_eq!(total("per_page=5").await, 30);
        }
    }
}

/// Instantiates every case on both backends.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!("datatable::postgres::", stringify!($case));
                    let Some(fx) = super::postgres(test).await else { return };
                    super::cases::$case(&fx).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!("datatable::sqlite::", stringify!($case));
                    let Some(fx) = super::sqlite(test).await else { return };
                    super::cases::$case(&fx).await;
                }
            )*
        }
    };
}

on_both_backends!(
    pages_carry_meta,
    rows_are_typed_json,
    per_page_is_capped,
    sorts_ascending_descending_and_by_default,
    equality_filters,
    like_filters,
    range_filters,
    search_covers_searchable_columns,
    joins_and_application_conditions,
    unknown_names_are_named,
    bad_values_are_rejected,
    dates_before_4713_bc_are_422s,
    injection_strings_never_reach_sql,
    counts_can_be_cached,
    tracked_totals_are_exact_and_fresh,
);

#[test]
fn definitions_are_checked() {
    let err = |b: DataTableBuilder| b.build().expect_err("invalid").to_string();
    let base = || DataTable::table("people").column(Column::integer("id").sortable());
    assert!(err(DataTable::table("people")).contains("no columns"));
    assert!(err(base().column(Column::integer("id"))).contains("twice"));
    assert!(err(base().column(Column::text("bad name"))).contains("bad name"));
    assert!(err(base().column(Column::text("-x"))).contains("-x"));
    assert!(err(base().default_sort("-nope")).contains("nope"));
    assert!(err(base().column(Column::text("name")).default_sort("name")).contains("not sortable"));
    assert!(err(base().key("nope")).contains("nope"));
    assert!(err(base().max_per_page(0)).contains("max_per_page"));
    assert!(err(DataTable::table("").column(Column::integer("id"))).contains("empty"));
    assert!(err(DataTable::from_sql(" ").column(Column::integer("id"))).contains("empty"));
    assert!(err(DataTable::table("a..b").column(Column::integer("id"))).contains("empty"));
    assert!(
        err(DataTable::from_sql("people p")
            .column(Column::integer("id"))
            .tracked_row_count())
        .contains("tracked_row_count needs a table")
    );
    assert!(base().default_sort("-id").build().is_ok());
    let table = base()
        .column(Column::text("name"))
        .per_page(500)
        .max_per_page(50)
        .build()
        .expect("valid");
    assert_eq!(
        table.columns().map(Column::name).collect::<Vec<_>>(),
        ["id", "name"]
    );
    assert_eq!(
        table.parse(None).expect("no query").per_page(),
        50,
        "the default page size is capped too"
    );
}

#[tokio::test]
#[should_panic(expected = "invalid DataTable definition for people")]
async fn into_route_panics_on_a_bad_definition() {
    let db = Database::Sqlite(
        sqlx::sqlite::SqlitePoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .expect("lazy pool"),
    );
    let _route: axum::routing::MethodRouter = DataTable::table("people")
        .column(Column::integer("id"))
        .default_sort("id")
        .into_route(db);
}
