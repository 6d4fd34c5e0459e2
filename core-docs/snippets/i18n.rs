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
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

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

    #[tokio::test]
    async fn the_response_is_in_the_request_language() {
        add();
        let response = router()
            .oneshot(
                Request::get("/welcome")
                    .header("accept-language", "zh-CN")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.headers()["content-language"], "zh");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["data"], "欢迎，Ada！");
        assert_eq!(body["message"], "Your cart is empty");
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
