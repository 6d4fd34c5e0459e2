//! The `#[cached]` attribute, re-exported by `core-db` as `core_db::cached`.
//!
//! It turns an `async fn` returning `Result<T, E>` into a get-or-compute through a Rustforge
//! `Cache`: the body runs only on a miss, only `Ok` values are stored, and concurrent misses go
//! through the cache's single-flight path, so the body runs once per key however many callers
//! miss together. See `core_db::cached` for the full description and an example.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Expr, ExprArray, ExprLit, ItemFn, Lit, LitStr, Meta, ReturnType, Token, Type};

/// Caches the `Ok` value of an `async fn` returning `Result<T, E>` in a Rustforge `Cache`.
///
/// ```text
/// #[cached(cache = state.cache, key = "user:{id}", ttl = 300, tags = ["users", "user:{id}"])]
/// async fn find_user(state: &AppState, id: i64) -> Result<User, AppError> { ... }
/// ```
///
/// Options:
///
/// - `cache = <expr>` (required): the `Cache` to use, evaluated in the function (its arguments
///   and `self` are in scope); a `Cache`, `&Cache` or anything that derefs to one.
/// - `key = "..."` (required): the cache key, a `format!` string over the arguments
///   (`"user:{id}"`).
/// - `ttl = <seconds>` (optional): a `u64` expression; without it the value does not expire.
/// - `tags = ["...", ...]` (optional): tags for the stored value (each a format string too), for
///   `Cache::invalidate_tag`.
///
/// `T` must implement `Serialize + DeserializeOwned`, and `E` must implement
/// `From<core_db::Error>` so a cache failure can be returned (`anyhow::Error` does).
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    match expand(args.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            // Keep the function as written, so the only error is the one that explains the misuse.
            let mut tokens = error.to_compile_error();
            tokens.extend(item);
            tokens.into()
        }
    }
}

const OPTIONS: &str = "expected `cache`, `key`, `ttl` or `tags`";

struct Options {
    cache: Option<Expr>,
    key: Option<LitStr>,
    ttl: Option<Expr>,
    tags: Option<Vec<LitStr>>,
}

fn parse_options(args: TokenStream2) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut options = Options {
        cache: None,
        key: None,
        ttl: None,
        tags: None,
    };
    for meta in metas {
        let name = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let value = match &meta {
            Meta::NameValue(nv) => nv.value.clone(),
            _ if !["cache", "key", "ttl", "tags"].contains(&name.as_str()) => {
                return Err(unknown(&meta));
            }
            _ => {
                return Err(Error::new(
                    meta.span(),
                    format!("#[cached] option `{name}` needs a value: `{name} = ...`"),
                ));
            }
        };
        let duplicate = || Error::new(meta.span(), format!("duplicate #[cached] option `{name}`"));
        match name.as_str() {
            "cache" => {
                if options.cache.replace(value).is_some() {
                    return Err(duplicate());
                }
            }
            "key" => {
                let key = string_literal(&value).ok_or_else(|| {
                    Error::new(
                        value.span(),
                        "#[cached] `key` must be a string literal, a format string over the \
                         arguments such as \"user:{id}\"",
                    )
                })?;
                if options.key.replace(key).is_some() {
                    return Err(duplicate());
                }
            }
            "ttl" => {
                if options.ttl.replace(value).is_some() {
                    return Err(duplicate());
                }
            }
            "tags" => {
                let bad = || {
                    Error::new(
                        value.span(),
                        "#[cached] `tags` must be an array of string literals, such as \
                         [\"users\", \"user:{id}\"]",
                    )
                };
                let Expr::Array(ExprArray { elems, .. }) = &value else {
                    return Err(bad());
                };
                let tags = elems
                    .iter()
                    .map(string_literal)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad)?;
                if options.tags.replace(tags).is_some() {
                    return Err(duplicate());
                }
            }
            _ => return Err(unknown(&meta)),
        }
    }
    Ok(options)
}

fn unknown(meta: &Meta) -> Error {
    let name = meta
        .path()
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| quote!(#meta).to_string());
    Error::new(
        meta.path().span(),
        format!("unknown #[cached] option `{name}`; {OPTIONS}"),
    )
}

fn string_literal(expr: &Expr) -> Option<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        _ => None,
    }
}

/// Whether `ty` is spelled as a `Result` (`Result<T, E>`, `std::io::Result<T>`, `anyhow::Result<T>`,
/// or an alias whose name ends in `Result`).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Result")),
        Type::Group(group) => is_result(&group.elem),
        Type::Paren(paren) => is_result(&paren.elem),
        _ => false,
    }
}

fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let options = parse_options(args)?;
    let function: ItemFn = syn::parse2(item)?;
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &function;

    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            "#[cached] works on `async fn` only",
        ));
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => ty,
        ReturnType::Type(_, ty) => {
            return Err(Error::new(
                ty.span(),
                "#[cached] needs the function to return `Result<T, E>`: only `Ok` values are cached",
            ));
        }
        ReturnType::Default => {
            return Err(Error::new(
                sig.ident.span(),
                "#[cached] needs the function to return `Result<T, E>`: only `Ok` values are cached",
            ));
        }
    };
    let Some(cache) = options.cache else {
        return Err(Error::new(
            Span::call_site(),
            "#[cached] needs `cache = <expr>`, the Cache to use (for example `cache = state.cache`)",
        ));
    };
    let Some(key) = options.key else {
        return Err(Error::new(
            Span::call_site(),
            "#[cached] needs `key = \"...\"`, the cache key as a format string over the arguments \
             (for example `key = \"user:{id}\"`)",
        ));
    };
    let ttl = match options.ttl {
        Some(ttl) => {
            quote_spanned!(ttl.span()=> ::core_db::infra::cache::__private::ttl_secs(#ttl))
        }
        None => quote!(::core::option::Option::None),
    };
    let tags = options.tags.unwrap_or_default();

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            let __rf_cache: &::core_db::infra::cache::Cache = &(#cache);
            let __rf_key: ::std::string::String = ::std::format!(#key);
            let __rf_tags: ::std::vec::Vec<::std::string::String> =
                ::std::vec![#(::std::format!(#tags)),*];
            ::core_db::infra::cache::__private::cached(
                __rf_cache,
                &__rf_key,
                #ttl,
                &__rf_tags,
                async { ::core::convert::identity::<#output>(#block) },
            )
            .await
        }
    })
}
