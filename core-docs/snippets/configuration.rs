//! Configuration: typed settings from the environment, `.env` and `rustforge.toml`.

use core_web::config::Settings;

// region: load
fn load_settings() -> core_web::Result<Settings> {
    // The environment wins over `.env`, which wins over `rustforge.toml`.
    let settings = Settings::load()?;
    tracing::info!(
        port = settings.port,
        database = %settings.database_url,
        cache = %settings.cache_url,
        "settings loaded"
    );
    Ok(settings)
}
// endregion: load

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_a_map() -> core_web::Result<()> {
        // region: from-lookup
        // In tests, build settings from a map instead of the process environment.
        let settings = Settings::from_lookup(|name| match name {
            "PORT" => Some("8080".to_owned()),
            "REDIS_URL" => Some("redis://127.0.0.1:6379".to_owned()),
            _ => None,
        })?;
        assert_eq!(settings.port, 8080);
        assert_eq!(settings.cache_url, "redis://127.0.0.1:6379"); // REDIS_URL is the default
        assert_eq!(settings.queue_url, "redis://127.0.0.1:6379");
        assert_eq!(settings.database_url, "sqlite://data/app.sqlite3");
        // endregion: from-lookup
        Ok(())
    }

    #[test]
    fn an_invalid_value_names_the_variable() {
        // region: invalid
        let error = Settings::from_lookup(|name| (name == "PORT").then(|| "eighty".to_owned()))
            .expect_err("not a port");
        assert_eq!(
            error.to_string(),
            r#"invalid setting PORT="eighty": expected a port number 0–65535"#
        );
        // endregion: invalid
    }

    /// `load_settings` in the test's own environment (`core-docs/` has no `rustforge.toml`):
    /// the settings the environment gives, as `from_lookup` reads them.
    #[test]
    fn load_reads_the_environment() -> core_web::Result<()> {
        let settings = load_settings()?;
        let expected = Settings::from_lookup(|name| std::env::var(name).ok())?;
        assert_eq!(settings, expected);
        assert_eq!(
            settings.port,
            std::env::var("PORT").map_or(3000, |p| p.parse().expect("PORT"))
        );
        Ok(())
    }
}
