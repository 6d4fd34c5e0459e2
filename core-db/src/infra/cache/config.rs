//! The cache's settings (`CACHE_URL`) and the one parser of cache URLs, used both to check a
//! configuration without connecting and by [`Cache::from_url`] to build the driver.

use serde::{Deserialize, Serialize};

use super::{Cache, MemoryCacheOptions};
use crate::settings::{Invalid, redact_url};
use crate::{Error, Result};

/// The cache settings an application loads, taken by [`Cache::from_config`].
///
/// `url` is `memory://` (optionally `memory://?max_entries=N`), `redis://…` or `rediss://…`
/// (Redis), or `tiered+redis://…` / `tiered+rediss://…` (a memory L1 in front of that Redis).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// The driver's URL.
    pub url: String,
}

impl Default for CacheConfig {
    /// The in-memory cache, `memory://`.
    fn default() -> Self {
        Self {
            url: "memory://".to_owned(),
        }
    }
}

impl std::fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheConfig")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl CacheConfig {
    /// Checks the URL without connecting: a known scheme and valid options.
    ///
    /// # Errors
    /// [`Invalid`] naming `cache.url`.
    pub fn check(&self) -> std::result::Result<(), Invalid> {
        CacheUrl::parse(&self.url)
            .map(drop)
            .map_err(|e| Invalid::new("cache.url", e.to_string()))
    }
}

impl Cache {
    /// Builds the cache `config` names, its keys under `prefix` (the application's name).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// use core_db::{Cache, CacheConfig, CacheDriver};
    ///
    /// let cache = Cache::from_config(&CacheConfig::default(), "app").await?;
    /// assert_eq!(cache.driver(), CacheDriver::Memory);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Cache::from_url`].
    pub async fn from_config(config: &CacheConfig, prefix: impl Into<String>) -> Result<Self> {
        Self::from_url(&config.url, prefix).await
    }
}

/// A parsed cache URL: which driver, and its options.
#[derive(Debug)]
pub(super) enum CacheUrl<'a> {
    /// `memory://`.
    Memory(MemoryCacheOptions),
    /// `redis://…` / `rediss://…` (and Unix sockets): the URL itself.
    Redis(&'a str),
    /// `tiered+redis://…`: the Redis URL after `tiered+`.
    Tiered(&'a str),
}

impl<'a> CacheUrl<'a> {
    /// Parses `url`; errors never show its password.
    pub(super) fn parse(url: &'a str) -> Result<Self> {
        let shown = || redact_url(url);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::Config(format!("cache URL {:?} has no scheme", shown())))?;
        match scheme {
            "memory" => {
                let mut options = MemoryCacheOptions::new();
                let query = rest.split_once('?').map_or("", |(_, q)| q);
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some(("max_entries", n)) => {
                            let n = n.parse().map_err(|_| {
                                Error::Config(format!("cache URL {:?}: bad max_entries", shown()))
                            })?;
                            options = options.max_entries(n);
                        }
                        _ => {
                            return Err(Error::Config(format!(
                                "cache URL {:?}: unknown option {pair:?}",
                                shown()
                            )));
                        }
                    }
                }
                Ok(Self::Memory(options))
            }
            "redis" | "rediss" | "redis+unix" | "unix" => Ok(Self::Redis(url)),
            "tiered+redis" | "tiered+rediss" => Ok(Self::Tiered(&url["tiered+".len()..])),
            other => Err(Error::Config(format!(
                "cache URL {:?}: unknown scheme {other:?} (expected memory, redis, rediss, \
                 tiered+redis or tiered+rediss)",
                shown()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_driver_url_is_accepted_and_others_are_named() {
        for url in [
            "memory://",
            "memory://?max_entries=10",
            "redis://127.0.0.1:6379",
            "rediss://:pw@cache:6380/1",
            "tiered+redis://127.0.0.1:6379",
            "tiered+rediss://cache:6380",
        ] {
            let config = CacheConfig {
                url: url.to_owned(),
            };
            assert_eq!(config.check(), Ok(()), "{url}");
        }
        for url in [
            "memcached://x",
            "memory://?max_entries=many",
            "memory://?ttl=1",
            "nothing",
        ] {
            let config = CacheConfig {
                url: url.to_owned(),
            };
            assert_eq!(config.check().expect_err(url).key, "cache.url");
        }
    }

    #[test]
    fn neither_errors_nor_debug_show_the_password() {
        let config = CacheConfig {
            url: "memcached://:hunter2@cache:11211".to_owned(),
        };
        assert!(!config.check().unwrap_err().to_string().contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
