//! Settings: every variable of every crate's table is read from the environment, from `.env`
//! and from the TOML file, with that precedence; `Debug` never prints a secret; the README's
//! settings table is generated from the tables and the configurations' defaults.

use std::collections::BTreeMap;
use std::path::Path;

use app::Settings;
use core_db::settings::{Kind, Setting};
use serde_json::{Value, json};

fn every_setting() -> impl Iterator<Item = &'static Setting> {
    Settings::TABLES.iter().flat_map(|table| table.iter())
}

/// A valid value for `setting`, different from its default, that fits with the others.
fn sample(setting: &Setting) -> &'static str {
    match setting.name {
        "DATABASE_URL" => "postgres://forge@db.internal:5432/forge",
        "REDIS_URL" => "redis://127.0.0.1:6379/2",
        "CACHE_URL" => "tiered+redis://127.0.0.1:6379/3",
        "QUEUE_URL" => "rediss://jobs@queue.internal:6380/0",
        "STORAGE_DRIVER" => "s3",
        "S3_ENDPOINT" => "http://127.0.0.1:9000",
        "APP_NAME" => "forge",
        "DEFAULT_LOCALE" => "zh-CN",
        "LOG_FORMAT" => "json",
        "LOG_LEVEL" => "debug",
        "RUST_LOG" => "trace",
        "RUSTFORGE_CONFIG" => "settings.toml",
        "I18N_DIRS" => "i18n",
        "APP_ENV" => "production",
        "API_KEY_SECRET" => "hunter2-secret-value-long-enough-for-hmac",
        "WEBHOOK_ALLOW_NETWORKS" => "127.0.0.0/8, fd00::/8",
        "WEBHOOK_MAX_ATTEMPTS" => "12",
        "WEBHOOK_CONCURRENCY" => "123",
        _ => match setting.kind {
            Kind::Bool => "false",
            Kind::Int { .. } => "1234",
            Kind::Millis => "1500",
            Kind::Secs => "7",
            Kind::Duration => "90m",
            Kind::Decimal => "0.25",
            Kind::List => "a, b",
            Kind::Ip => "0.0.0.0",
            Kind::Secret => "hunter2-secret-value",
            _ => "sample-text",
        },
    }
}

/// What `sample` becomes in the serialized settings.
fn expected(setting: &Setting, raw: &str) -> Value {
    match setting.kind {
        Kind::Bool => json!(raw == "true"),
        Kind::Int { .. } => json!(raw.parse::<u64>().unwrap()),
        Kind::Millis => {
            let ms: u64 = raw.parse().unwrap();
            json!({"secs": ms / 1000, "nanos": (ms % 1000) * 1_000_000})
        }
        Kind::Secs => json!({"secs": raw.parse::<u64>().unwrap(), "nanos": 0}),
        Kind::Duration => json!({"secs": 5400, "nanos": 0}),
        Kind::Decimal => json!(raw.parse::<f64>().unwrap()),
        Kind::List => json!(raw.split(',').map(str::trim).collect::<Vec<_>>()),
        _ => json!(raw),
    }
}

fn at<'a>(value: &'a Value, key: &str) -> &'a Value {
    key.split('.')
        .fold(value, |v, part| v.get(part).unwrap_or(&Value::Null))
}

/// Asserts every setting holds its sample.
fn assert_samples(settings: &Settings, source: &str) {
    let serialized = serde_json::to_value(settings).unwrap();
    for setting in every_setting() {
        let raw = sample(setting);
        match setting.name {
            // Both fill `log.filter`; RUST_LOG wins.
            "LOG_LEVEL" => continue,
            // Secrets are never serialized; read them from their fields.
            "S3_SECRET_ACCESS_KEY" => assert_eq!(
                settings.base.storage.secret_access_key.as_deref(),
                Some(raw),
                "{source}"
            ),
            "API_KEY_SECRET" => assert_eq!(
                settings.forgerun.api_key_secret.as_deref(),
                Some(raw),
                "{source}"
            ),
            "ADMIN_TOKEN" => assert_eq!(
                settings.forgerun.admin_token.as_deref(),
                Some(raw),
                "{source}"
            ),
            "STORAGE_SIGNING_KEY" => assert_eq!(
                settings.base.storage.signing_key.as_deref(),
                Some(raw),
                "{source}"
            ),
            _ => assert_eq!(
                at(&serialized, setting.key),
                &expected(setting, raw),
                "{} from {source}",
                setting.name
            ),
        }
    }
}

fn samples() -> BTreeMap<&'static str, &'static str> {
    every_setting().map(|s| (s.name, sample(s))).collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn every_setting_is_read_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "settings.toml", "");
    let vars = samples();
    let settings = Settings::load_from(dir.path(), |name| vars.get(name).map(|v| (*v).to_owned()))
        .expect("valid settings");
    assert_samples(&settings, "the environment");
}

#[test]
fn every_setting_is_read_from_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "settings.toml", "");
    let text: String = samples()
        .iter()
        .map(|(name, value)| format!("{name}=\"{value}\"\n"))
        .collect();
    write(dir.path(), ".env", &text);
    let settings = Settings::load_from(dir.path(), |_| None).expect("valid settings");
    assert_samples(&settings, ".env");
}

#[test]
fn every_setting_is_read_from_the_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = samples()
        .iter()
        .filter(|(name, _)| **name != "RUSTFORGE_CONFIG")
        .map(|(name, value)| format!("{} = \"{value}\"\n", name.to_ascii_lowercase()))
        .collect();
    write(dir.path(), "settings.toml", &text);
    let settings = Settings::load_from(dir.path(), |name| {
        (name == "RUSTFORGE_CONFIG").then(|| "settings.toml".to_owned())
    })
    .expect("valid settings");
    assert_samples(&settings, "the TOML file");
    // Typed TOML values work too, and `rustforge.toml` is read without RUSTFORGE_CONFIG.
    write(
        dir.path(),
        "rustforge.toml",
        "port = 8080\nmigrate_on_start = false\ncors_allowed_origins = [\"https://a.test\"]\n",
    );
    let settings = Settings::load_from(dir.path(), |_| None).expect("valid settings");
    assert_eq!(settings.base.port, 8080);
    assert!(!settings.base.database.migrate_on_start);
    assert_eq!(settings.base.http.cors_allowed_origins, ["https://a.test"]);
}

#[test]
fn the_environment_wins_over_dotenv_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rustforge.toml",
        "port = 1001\nlog_format = \"pretty\"\ncache_url = \"memory://\"\ns3_secret_access_key = \"from-toml\"\nworker_concurrency = 3\n",
    );
    write(
        dir.path(),
        ".env",
        "PORT=1002\nLOG_FORMAT=json\nS3_SECRET_ACCESS_KEY=from-dotenv\n",
    );
    let env = |name: &str| (name == "PORT").then(|| "1003".to_owned());
    let settings = Settings::load_from(dir.path(), env).unwrap();
    assert_eq!(settings.base.port, 1003, "environment over .env and file");
    assert_eq!(settings.base.log.format, core_web::config::LogFormat::Json);
    assert_eq!(
        settings.base.storage.secret_access_key.as_deref(),
        Some("from-dotenv"),
        ".env over the file"
    );
    assert_eq!(settings.worker.concurrency, 3, "the file over the default");
    assert_eq!(settings.base.cache.url, "memory://");
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let settings = Settings::load_from(dir.path(), |_| None).unwrap();
    assert_eq!(settings.base.port, 1001);
    // REDIS_URL fills CACHE_URL and QUEUE_URL only where no source set them.
    let env = |name: &str| (name == "REDIS_URL").then(|| "redis://127.0.0.1:6379".to_owned());
    let settings = Settings::load_from(dir.path(), env).unwrap();
    assert_eq!(settings.base.cache.url, "memory://", "set in the file");
    assert_eq!(
        settings.queue.url, "redis://127.0.0.1:6379",
        "from REDIS_URL"
    );
}

#[test]
fn invalid_values_in_files_name_the_variable() {
    for (file, text, variable, accepts) in [
        (
            "rustforge.toml",
            "queue_url = \"amqp://jobs:hunter2@mq/vhost\"\n",
            "QUEUE_URL",
            "memory://",
        ),
        (
            ".env",
            "WORKER_CONCURRENCY=0\n",
            "WORKER_CONCURRENCY",
            "1–4096",
        ),
        (
            ".env",
            "S3_SECRET_ACCESS_KEY=hunter2\nSTORAGE_DRIVER=s3\n",
            "S3_BUCKET",
            "bucket",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), file, text);
        let err = Settings::load_from(dir.path(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(variable) && err.contains(accepts), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = Settings::load_from(dir.path(), |name| {
        (name == "RUSTFORGE_CONFIG").then(|| "missing.toml".to_owned())
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing.toml"), "{err}");
}

/// `QUEUE_URL` (core-jobs' section) is named without its password, whatever characters the
/// password holds.
#[test]
fn invalid_queue_urls_name_the_variable_without_the_password() {
    for password in test_support::URL_PASSWORDS {
        let url = format!("amqp://jobs:{password}@mq/vhost");
        let err = Settings::from_lookup(|name| (name == "QUEUE_URL").then(|| url.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("QUEUE_URL"), "{err}");
        assert!(
            !err.contains(password),
            "QUEUE_URL with {password:?} leaks it: {err}"
        );
        assert!(err.contains(":***@"), "{err} shows where the password was");
    }
}

#[test]
fn webhook_allow_networks_must_be_cidr_networks() {
    for bad in ["localhost", "127.0.0.1/33", "10.0.0.0/8, nope"] {
        let err = Settings::from_lookup(|name| {
            (name == "WEBHOOK_ALLOW_NETWORKS").then(|| bad.to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("WEBHOOK_ALLOW_NETWORKS"), "{bad}: {err}");
    }
    let ok = Settings::from_lookup(|name| {
        (name == "WEBHOOK_ALLOW_NETWORKS").then(|| "127.0.0.0/8,::1/128".to_owned())
    })
    .unwrap();
    let nets = ok.forgerun.allowed_networks().unwrap();
    assert_eq!(nets.len(), 2);
}

/// Every configuration, formatted with `Debug` alone and inside the settings, hides every
/// secret: secret settings, and passwords in every URL.
#[test]
fn debug_output_never_shows_a_secret() {
    const SECRET: &str = "hunter2-secret-value";
    let vars = BTreeMap::from([
        (
            "DATABASE_URL",
            format!("postgres://forge:{SECRET}@db/forge"),
        ),
        ("REDIS_URL", format!("redis://:{SECRET}@cache:6379")),
        ("CACHE_URL", format!("tiered+rediss://:{SECRET}@cache:6380")),
        ("QUEUE_URL", format!("redis://jobs:{SECRET}@queue:6379/1")),
        ("S3_SECRET_ACCESS_KEY", SECRET.to_owned()),
        ("STORAGE_SIGNING_KEY", SECRET.to_owned()),
        ("ADMIN_TOKEN", SECRET.to_owned()),
    ]);
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let base = &settings.base;
    for shown in [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        format!("{base:?}"),
        format!("{:?}", base.database),
        format!("{:?}", base.cache),
        format!("{:?}", base.storage),
        format!("{:?}", settings.queue),
        format!("{:?}", settings.worker),
        format!("{:?}", base.http),
        format!("{:?}", base.log),
        format!("{:?}", base.i18n),
        format!("{:?}", settings.forgerun),
        // Secret settings are not serialized either (URLs are, for the README's defaults).
        serde_json::to_string(&settings.forgerun).unwrap(),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
    }
    assert!(format!("{settings:?}").contains("***"));
}

const BEGIN: &str = "<!-- settings table: generated from the crates' SETTINGS; `RUSTFORGE_BLESS=1 cargo test -p app --test settings` rewrites it -->\n";
const END: &str = "<!-- end of settings table -->\n";

/// The README's settings table is the tables and defaults, rendered.
#[test]
fn readme_settings_table_is_generated() {
    let mut table = String::from("| Setting | Default | Meaning |\n|---|---|---|\n");
    for row in Settings::documented() {
        table += &format!(
            "| `{}` | {} | {} |\n",
            row.name,
            if row.default.starts_with('(') {
                row.default.clone()
            } else {
                format!("`{}`", row.default)
            },
            row.description.replace('|', "\\|")
        );
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("README has the settings table markers")
        + BEGIN.len();
    let end = readme[start..].find(END).expect("end marker") + start;
    if std::env::var_os("RUSTFORGE_BLESS").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert!(
        readme[start..end] == table,
        "README's settings table is out of date; regenerate it with \
         `RUSTFORGE_BLESS=1 cargo test -p app --test settings`"
    );
}

/// `app/rustforge.example.toml` (shown by the cookbook's production chapter) loads as it says:
/// production, with the secret from the environment, and the environment still wins.
#[test]
fn the_production_example_file_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("rustforge.example.toml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&example, dir.path().join("rustforge.toml")).unwrap();
    let secret = "a-production-secret-of-at-least-32-characters";
    let env = |name: &str| match name {
        "API_KEY_SECRET" => Some(secret.to_owned()),
        "DATABASE_URL" => Some("postgres://forge@db.internal/forgerun".to_owned()),
        _ => None,
    };
    let settings = Settings::load_from(dir.path(), env).expect("the example file is valid");
    assert_eq!(
        settings.forgerun.env,
        app::settings::Environment::Production
    );
    assert_eq!(settings.base.app_name, "forgerun");
    assert_eq!(settings.base.log.format, core_web::config::LogFormat::Json);
    assert_eq!(
        settings.base.cache.url,
        "tiered+redis://redis.internal:6379"
    );
    assert_eq!(settings.queue.url, "redis://redis.internal:6379");
    assert_eq!(
        settings.base.storage.bucket.as_deref(),
        Some("forgerun-artifacts")
    );
    assert!(!settings.base.database.migrate_on_start);
    assert_eq!(settings.base.database.max_connections, 20);
    assert_eq!(
        settings.base.database.url,
        "postgres://forge@db.internal/forgerun"
    );
    assert_eq!(
        settings.base.http.shutdown_grace,
        std::time::Duration::from_secs(25)
    );
    assert_eq!(settings.worker.concurrency, 16);
    assert_eq!(
        settings.forgerun.api_key_ttl,
        Some(std::time::Duration::from_secs(90 * 86_400))
    );
    assert_eq!(
        settings.forgerun.api_key_renew_overlap,
        std::time::Duration::from_secs(3600)
    );

    // Without the secret, production refuses to start and names the variable.
    let err = Settings::load_from(dir.path(), |_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("API_KEY_SECRET"), "{err}");
    // The environment wins over the file.
    let env = |name: &str| match name {
        "API_KEY_SECRET" => Some(secret.to_owned()),
        "SHUTDOWN_GRACE_SECS" => Some("5".to_owned()),
        _ => None,
    };
    let settings = Settings::load_from(dir.path(), env).unwrap();
    assert_eq!(
        settings.base.http.shutdown_grace,
        std::time::Duration::from_secs(5)
    );
}
