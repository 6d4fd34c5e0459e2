//! Helpers shared by the database test files (`mod db_support;`): a migrated database of each
//! backend and a macro that runs one behavioural test on both.

use core_db::Database;

/// Keeps a test database alive: the SQLite file's directory, or the PostgreSQL database.
pub enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] test_support::TestPostgres),
}

/// A migrated SQLite database in a temporary directory.
pub async fn sqlite_db() -> (Database, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
    let db = Database::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    (db, Guard::Sqlite(dir))
}

/// A migrated, fresh PostgreSQL database; `None` (or a panic under
/// `RUSTFORGE_REQUIRE_SERVICES=1`) when PostgreSQL is not running.
pub async fn postgres_db(test: &str) -> Option<(Database, Guard)> {
    let pg = test_support::postgres(test).await?;
    let db = Database::connect(&pg.url).await.unwrap();
    db.migrate().await.unwrap();
    Some((db, Guard::Postgres(pg)))
}

/// Instantiates each named test of the `behaviour` module on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (db, _guard) = $crate::db_support::sqlite_db().await;
                super::behaviour::$name(&db).await;
            }

            #[tokio::test]
            async fn postgres() {
                let test = concat!(stringify!($name), "::postgres");
                let Some((db, _guard)) = $crate::db_support::postgres_db(test).await else {
                    return;
                };
                super::behaviour::$name(&db).await;
            }
        }
    )*};
}
