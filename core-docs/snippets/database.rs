//! The database handle: SQLite by default, PostgreSQL in production, one API.

use core_db::{Backend, Database, DatabaseOptions, Tx};

// region: connect
pub async fn connect(url: &str) -> core_db::Result<Database> {
    // `sqlite://data/app.sqlite3` (file and directory created) or `postgres://user@host/db`.
    let db = Database::connect_with(
        url,
        &DatabaseOptions {
            max_connections: 20,
            ..DatabaseOptions::default()
        },
    )
    .await?;
    db.migrate().await?; // the framework's and the app's embedded migrations
    db.ping(std::time::Duration::from_secs(2)).await?; // readiness check
    Ok(db)
}
// endregion: connect

// region: query
/// Queries are plain sqlx; match on the backend to run one on either pool.
pub async fn count_articles(db: &Database) -> core_db::Result<i64> {
    let sql = "SELECT COUNT(*) FROM articles";
    Ok(match db {
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
    })
}
// endregion: query

// region: transaction
/// Writes that must happen together: both rows, or neither.
pub async fn publish(db: &Database, id: i64) -> core_db::Result<()> {
    let mut tx = db.begin().await?;
    let update = "UPDATE articles SET published = 1 WHERE id = $1";
    let audit = "INSERT INTO audit_log (article_id, action) VALUES ($1, 'publish')";
    match &mut tx {
        Tx::Postgres(conn) => {
            sqlx::query(update).bind(id).execute(&mut **conn).await?;
            sqlx::query(audit).bind(id).execute(&mut **conn).await?;
        }
        Tx::Sqlite(conn) => {
            sqlx::query(update).bind(id).execute(&mut **conn).await?;
            sqlx::query(audit).bind(id).execute(&mut **conn).await?;
        }
    }
    tx.commit().await // dropping `tx` instead would roll back
}
// endregion: transaction

// region: row_count
/// An exact row count: O(1) on PostgreSQL once the table is tracked, `COUNT(*)` otherwise.
pub async fn article_count(db: &Database) -> core_db::Result<u64> {
    // Installs the table's triggers and seeds the count (PostgreSQL; nothing to do on SQLite).
    // Safe to call at every start: it re-seeds the count.
    db.track_row_count("articles").await?;
    db.row_count("articles").await
}
// endregion: row_count

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_in_memory_runs_the_examples() -> core_db::Result<()> {
        let db = connect("sqlite::memory:").await?;
        assert_eq!(db.backend(), Backend::Sqlite);
        // The page's migration (snippets/sql/20261201000000_articles.sql), then the data.
        db.execute(include_str!("sql/20261201000000_articles.sql"))
            .await?;
        db.execute(
            "CREATE TABLE audit_log (article_id INTEGER NOT NULL, action TEXT NOT NULL);
             INSERT INTO articles (id, title) VALUES (1, 'Hello'), (2, 'World');",
        )
        .await?;
        let pool = db.as_sqlite().expect("sqlite");
        let (published, created_at): (i64, String) =
            sqlx::query_as("SELECT published, created_at FROM articles WHERE id = 1")
                .fetch_one(pool)
                .await?;
        assert_eq!(published, 0, "published defaults to 0");
        // The default is an RFC 3339 UTC timestamp with milliseconds: 2026-12-01T10:15:00.123Z.
        assert!(
            created_at.len() == 24
                && created_at.ends_with('Z')
                && created_at.as_bytes()[10] == b'T'
                && created_at.as_bytes()[19] == b'.',
            "{created_at}"
        );
        assert_eq!(count_articles(&db).await?, 2);
        publish(&db, 1).await?;
        let logged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(pool)
            .await?;
        assert_eq!(logged, 1);
        assert_eq!(article_count(&db).await?, 2);
        db.execute("INSERT INTO articles (id, title) VALUES (3, 'Again')")
            .await?;
        assert_eq!(db.row_count("articles").await?, 3);
        Ok(())
    }

    #[test]
    fn the_url_picks_the_backend() {
        assert_eq!(
            Backend::from_url("postgres://u@h/db").expect("pg"),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("sqlite://data/app.sqlite3").expect("sqlite"),
            Backend::Sqlite
        );
        assert!(Backend::from_url("mysql://h/db").is_err());
    }
}
