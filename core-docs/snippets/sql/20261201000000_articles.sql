-- The Database page's example migration (an application's migrations/sqlite/). Run on SQLite by
-- core-docs/snippets/database.rs, whose queries then use this table.
-- region: articles
CREATE TABLE articles (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    title      TEXT    NOT NULL,
    published  INTEGER NOT NULL DEFAULT 0,
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- endregion: articles
