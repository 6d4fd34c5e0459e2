//! Translations: catalogs, `t` / `t_args`, the request's locale.

use axum::Router;
use axum::routing::get;
use core_i18n::{I18nConfig, t, t_args};
use core_web::{ApiResponse, ApiResult};

// region: init
/// At start-up: the catalogs compiled into the binary, then the directory `dir` (`"i18n"`, next
/// to the binary), whose keys override the built-in ones.
pub fn load_translations(dir: &str) -> core_i18n::Result<()> {
    core_i18n::init(I18nConfig {
        dirs: vec![dir.into()],
        default_locale: "en".to_owned(),
    })?;
    core_i18n::add_catalog_defaults("en", include_str!("i18n/en.json"))?;
    core_i18n::add_catalog_defaults("zh", include_str!("i18n/zh.json"))?;
    Ok(())
}
// endregion: init

// region: handler
async fn welcome() -> ApiResult<String> {
    // The locale was negotiated by the middleware stack for this request.
    let text = t_args("shop.welcome", &[("name", &"Ada")]);
    Ok(ApiResponse::success(text, &t("shop.cart.empty")))
}

pub fn router() -> Router {
    let routes = Router::new().route("/welcome", get(welcome));
    core_web::middleware::stack(routes, &core_web::config::HttpConfig::default())
}
// endregion: handler

// region: background
/// `tokio::spawn`ed tasks do not inherit the request's locale: carry it over.
pub async fn send_receipt_later(order_id: u64) {
    let locale = core_i18n::current_locale();
    tokio::spawn(core_i18n::scope(locale, async move {
        let subject = t_args("shop.cart.items", &[("count", &order_id)]);
        tracing::info!(%subject, "receipt queued");
    }));
}
// endregion: background

#[cfg(test)]
mod tests {
    use super::*;

    fn add() {
        core_i18n::add_catalog("en", include_str!("i18n/en.json")).expect("en");
        core_i18n::add_catalog("zh", include_str!("i18n/zh.json")).expect("zh");
    }

    #[test]
    fn lookups_fall_back_along_the_chain() {
        add();
        // region: lookups
        assert_eq!(t_args("shop.welcome", &[("name", &"Ada")]), "Welcome, Ada!");
        core_i18n::sync_scope("zh-CN", || {
            // zh-CN → zh
            assert_eq!(t_args("shop.welcome", &[("name", &"Ada")]), "欢迎，Ada！");
            // missing in zh → the default locale
            assert_eq!(t("shop.cart.empty"), "Your cart is empty");
            // missing everywhere → the key itself
            assert_eq!(t("shop.unknown"), "shop.unknown");
        });
        // An explicit locale, e.g. for an e-mail in the recipient's language.
        assert_eq!(
            core_i18n::t_args_in("zh", "shop.cart.items", &[("count", &3)]),
            "购物车里有 3 件商品"
        );
        // endregion: lookups
    }

    #[test]
    fn negotiation() {
        add();
        // region: resolve
        use core_i18n::resolve_locale;
        // X-Locale wins when it names an available locale.
        assert_eq!(resolve_locale(Some("zh"), Some("en")), "zh");
        // Accept-Language by quality; zh-TW falls back to its language.
        assert_eq!(resolve_locale(None, Some("fr;q=0.9, zh-TW;q=0.8")), "zh");
        // Nothing usable: the default locale.
        assert_eq!(
            resolve_locale(Some("xx"), None),
            core_i18n::default_locale()
        );
        // endregion: resolve
    }

    /// The page's curl command (`snippets/shell/requests.sh`, region `welcome`) gets the answer
    /// it shows, in Chinese where the catalog has the key.
    #[tokio::test]
    async fn the_response_is_in_the_request_language() {
        add();
        let (status, headers, body) =
            crate::support::send(router(), crate::curl::request("welcome")).await;
        assert_eq!(status, axum::http::StatusCode::OK);
        assert_eq!(headers["content-language"], "zh");
        crate::support::assert_example(body, "welcome-zh");
    }

    /// The page's French catalog (`snippets/json/i18n-fr.json`) overrides messages core-web
    /// has: every key it defines is one of core-web's, so none is a typo that changes nothing.
    #[test]
    fn the_framework_catalog_example_overrides_real_keys() {
        fn leaves(value: &serde_json::Value, at: &str, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        let path = if at.is_empty() {
                            key.clone()
                        } else {
                            format!("{at}.{key}")
                        };
                        leaves(value, &path, out);
                    }
                }
                _ => out.push(at.to_owned()),
            }
        }
        let core_web: serde_json::Value =
            serde_json::from_str(include_str!("../../core-web/i18n/en.json")).expect("JSON");
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        leaves(&crate::support::example("i18n-fr"), "", &mut ours);
        leaves(&core_web, "", &mut theirs);
        assert!(!ours.is_empty());
        for key in &ours {
            assert!(theirs.contains(key), "{key} is not a core-web message key");
        }
    }

    /// `load_translations` on the page's own catalogs (`snippets/i18n/`): they answer in each
    /// locale; a directory that does not exist is an error naming it.
    #[tokio::test]
    async fn load_translations_loads_the_catalogs() {
        load_translations(concat!(env!("CARGO_MANIFEST_DIR"), "/snippets/i18n")).expect("loads");
        let welcome = || t_args("shop.welcome", &[("name", &"Ada")]);
        assert_eq!(
            core_i18n::scope("zh", async { welcome() }).await,
            "欢迎，Ada！"
        );
        assert_eq!(
            core_i18n::scope("en", async { t("shop.cart.empty") }).await,
            "Your cart is empty"
        );
        assert!(matches!(
            load_translations("no-such-dir"),
            Err(core_i18n::Error::MissingDir { .. })
        ));
    }

    /// `send_receipt_later` carries the locale into the task it spawns: it runs, in a scope, to
    /// the end without panicking.
    #[tokio::test]
    async fn send_receipt_later_runs() {
        add();
        core_i18n::scope("zh", send_receipt_later(3)).await;
        tokio::task::yield_now().await;
    }
}
