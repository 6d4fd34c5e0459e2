//! The command lines, manifests and settings files the docs site shows but the test suite cannot
//! run as they stand (`cargo run -p app` serves until stopped; a `[dependencies]` table belongs
//! to a reader's crate): each is checked against the workspace instead, so a renamed package,
//! command, dependency or setting fails here rather than on a reader's machine.
//!
//! - `snippets/shell/commands.sh`: each package named by `-p` is a workspace member, each
//!   `--features` one of its features, each `app` command one the app's usage lists, each crate
//!   `cargo add` names a workspace dependency, each script exists, and each `VARIABLE=value`
//!   before a command is a real setting that accepts the value.
//! - `snippets/toml/rustforge.toml`: loaded by the framework's own loader; every key is a setting.
//! - `snippets/toml/dependencies.toml`: every dependency is a workspace dependency, and every
//!   crate the Getting started example uses is listed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_web::config::{Loader, Settings};

fn docs() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn workspace() -> PathBuf {
    docs().parent().expect("workspace root").to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn toml_file(path: &Path) -> toml::Table {
    toml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every setting the framework reads: core-web's, core-db's and core-jobs' tables.
fn settings() -> Vec<&'static core_db::settings::Setting> {
    [
        core_web::config::SETTINGS,
        core_db::settings::SETTINGS,
        core_jobs::config::SETTINGS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Variables the pages set that are not settings, with the file that reads each.
const OTHER_VARIABLES: &[(&str, &str)] =
    &[("RUSTFORGE_REQUIRE_SERVICES", "test-support/src/lib.rs")];

/// The workspace's packages (name → directory), from the root manifest's `members`.
fn members() -> BTreeMap<String, PathBuf> {
    let root = toml_file(&workspace().join("Cargo.toml"));
    let members = root["workspace"]["members"].as_array().expect("members");
    members
        .iter()
        .map(|member| {
            let dir = workspace().join(member.as_str().expect("a path"));
            let manifest = toml_file(&dir.join("Cargo.toml"));
            let name = manifest["package"]["name"]
                .as_str()
                .expect("name")
                .to_owned();
            (name, dir)
        })
        .collect()
}

/// The names in the root manifest's `[workspace.dependencies]`.
fn workspace_dependencies() -> Vec<String> {
    let root = toml_file(&workspace().join("Cargo.toml"));
    root["workspace"]["dependencies"]
        .as_table()
        .expect("[workspace.dependencies]")
        .keys()
        .cloned()
        .collect()
}

/// The commands of `snippets/shell/commands.sh`: continuation lines joined, comments (whole
/// lines or after the command) and blank lines dropped.
fn commands() -> Vec<String> {
    let text = read(&docs().join("snippets/shell/commands.sh"));
    let mut out = Vec::new();
    for line in text.lines() {
        let line = match line.find(" #") {
            Some(at) => &line[..at],
            None => line,
        }
        .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        assert!(!line.ends_with('\\'), "one command a line: {line}");
        assert!(
            !line.contains(['\'', '"', '$', '`', '|', ';', '&']),
            "{line}: quoting and expansions are not checked here"
        );
        out.push(line.to_owned());
    }
    out
}

/// Checks `NAME=value`: a setting that accepts the value, or a variable another part reads.
fn check_variable(name: &str, value: &str) {
    if let Some(setting) = settings().into_iter().find(|s| s.name == name) {
        let loader =
            Loader::from_lookup(Settings::TABLES, |n| (n == name).then(|| value.to_owned()))
                .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        let parsed: Settings = loader
            .extract()
            .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        loader
            .check(parsed.check())
            .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        assert!(!setting.description.is_empty());
        return;
    }
    let (_, file) = OTHER_VARIABLES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} is not a setting (settings.json) nor a known variable"));
    assert!(
        read(&workspace().join(file)).contains(&format!("\"{name}\"")),
        "{file} no longer reads {name}"
    );
}

/// Checks `cargo SUBCOMMAND ARGS`.
fn check_cargo(line: &str, args: &[&str]) {
    let members = members();
    let (subcommand, rest) = args
        .split_first()
        .unwrap_or_else(|| panic!("{line}: no subcommand"));
    // Arguments after `--` go to the program.
    let (options, program_args) = match rest.iter().position(|a| *a == "--") {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut package = None;
    let mut features = Vec::new();
    let mut crates = Vec::new();
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match *option {
            "-p" | "--package" => package = options.next().copied(),
            "--features" | "-F" => features.extend(options.next().expect("features").split(',')),
            "--dev" | "-q" | "--release" | "--all-targets" => {}
            other if other.starts_with('-') => panic!("{line}: {other} is not checked here"),
            other => crates.push(other),
        }
    }
    match *subcommand {
        "run" | "test" | "build" | "check" => {
            assert!(crates.is_empty(), "{line}: {crates:?}");
            if let Some(package) = package {
                let dir = members
                    .get(package)
                    .unwrap_or_else(|| panic!("{line}: no workspace package {package}"));
                let manifest = toml_file(&dir.join("Cargo.toml"));
                for feature in &features {
                    let known = manifest
                        .get("features")
                        .and_then(|f| f.as_table())
                        .is_some_and(|f| f.contains_key(*feature));
                    assert!(known, "{line}: {package} has no feature {feature}");
                }
                if package == "app"
                    && let Some(command) = program_args.first()
                {
                    // The app's usage text (app/src/main.rs) lists every command.
                    let main = read(&workspace().join("app/src/main.rs"));
                    let usage = format!("app {}", program_args.join(" "));
                    let listed = main.lines().any(|l| {
                        let l = l.trim_start();
                        let l = l.strip_prefix("usage:").unwrap_or(l).trim_start();
                        l.strip_prefix(&usage)
                            .is_some_and(|after| after.is_empty() || after.starts_with(' '))
                    });
                    assert!(
                        listed,
                        "{line}: the app has no command `{command}` (app/src/main.rs USAGE)"
                    );
                }
            } else {
                assert!(features.is_empty(), "{line}: --features without -p");
            }
        }
        "add" => {
            assert!(!crates.is_empty(), "{line}: no crate");
            let known = workspace_dependencies();
            for name in crates {
                assert!(
                    known.iter().any(|k| k == name),
                    "{line}: {name} is not in [workspace.dependencies]"
                );
            }
        }
        other => panic!("{line}: cargo {other} is not checked here"),
    }
}

#[test]
fn shown_commands_name_what_exists() {
    let commands = commands();
    assert!(commands.len() >= 5, "{commands:?}");
    for line in &commands {
        let words: Vec<&str> = line.split_whitespace().collect();
        let program_at = words
            .iter()
            .position(|w| !w.contains('='))
            .unwrap_or_else(|| panic!("{line}: no command"));
        for assignment in &words[..program_at] {
            let (name, value) = assignment.split_once('=').expect("NAME=value");
            check_variable(name, value);
        }
        let (program, args) = words[program_at..].split_first().expect("a command");
        match *program {
            "cargo" => check_cargo(line, args),
            script if script.contains('/') => {
                let path = workspace().join(script);
                assert!(path.is_file(), "{line}: {} does not exist", path.display());
            }
            other => panic!("{line}: `{other}` is not checked here"),
        }
    }
}

/// The checks refuse what does not exist.
#[test]
#[should_panic(expected = "no workspace package")]
fn an_unknown_package_fails() {
    check_cargo("cargo run -p my-app", &["run", "-p", "my-app"]);
}

#[test]
#[should_panic(expected = "has no command")]
fn an_unknown_app_command_fails() {
    check_cargo(
        "cargo run -p app -- migrate-all",
        &["run", "-p", "app", "--", "migrate-all"],
    );
}

#[test]
#[should_panic(expected = "not a setting")]
fn an_unknown_variable_fails() {
    check_variable("LOG_FORMATS", "json");
}

#[test]
#[should_panic(expected = "LOG_FORMAT=yaml")]
fn an_invalid_value_fails() {
    check_variable("LOG_FORMAT", "yaml");
}

/// The Configuration page's `rustforge.toml`: every key is a setting (the loader would ignore
/// an unknown one) and the framework's loader reads it into the values it shows.
#[test]
fn the_settings_file_is_read_as_shown() {
    let path = docs().join("snippets/toml/rustforge.toml");
    let table = toml_file(&path);
    let names: Vec<&str> = settings().iter().map(|s| s.name).collect();
    for key in table.keys() {
        assert!(
            names.contains(&key.to_ascii_uppercase().as_str()),
            "{}: `{key}` is not a setting",
            path.display()
        );
        assert_eq!(key, &key.to_ascii_lowercase(), "keys are lower case");
    }

    let dir = path.parent().expect("dir");
    let loader = Loader::from_dir(Settings::TABLES, dir, |name| {
        (name == core_web::config::CONFIG_FILE_VARIABLE).then(|| "rustforge.toml".to_owned())
    })
    .expect("the file loads");
    let settings: Settings = loader.extract().expect("the values fit");
    loader
        .check(settings.check())
        .expect("the values are valid");
    assert_eq!(settings.app_name, "shop");
    assert_eq!(settings.addr().port(), 8080);
    assert_eq!(
        settings.redis_url.as_deref(),
        Some("redis://cache.internal:6379")
    );
    assert_eq!(
        settings.http.cors_allowed_origins,
        ["https://shop.example.com", "https://admin.example.com"]
    );
    assert_eq!(
        serde_json::to_value(settings.log.format).expect("json"),
        "json"
    );
    let json = serde_json::to_value(&settings.database).expect("json");
    assert!(
        json.to_string()
            .contains("postgres://shop@db.internal/shop"),
        "{json}"
    );
}

/// The Getting started page's `[dependencies]`: each is a workspace dependency taken with
/// `workspace = true`, and every crate `src/main.rs` (snippets/getting_started.rs) uses is there.
#[test]
fn the_dependencies_table_is_complete() {
    let path = docs().join("snippets/toml/dependencies.toml");
    let table = toml_file(&path);
    let dependencies = table["dependencies"].as_table().expect("[dependencies]");
    let known = workspace_dependencies();
    for (name, spec) in dependencies {
        assert!(
            known.contains(name),
            "{name} is not in [workspace.dependencies]"
        );
        assert_eq!(
            spec.get("workspace").and_then(|w| w.as_bool()),
            Some(true),
            "{name}.workspace = true"
        );
    }
    let example = read(&docs().join("snippets/getting_started.rs"));
    let main = example
        .split("// region: main")
        .nth(1)
        .and_then(|rest| rest.split("// endregion: main").next())
        .expect("region main");
    let mut used: Vec<String> = main
        .lines()
        .filter_map(|line| line.trim().strip_prefix("use "))
        .filter_map(|path| path.split("::").next())
        .map(|name| name.replace('_', "-"))
        .collect();
    // `#[tokio::main]` and `anyhow::Result` in `main`.
    for name in ["tokio", "anyhow"] {
        if main.contains(&format!("{name}::")) {
            used.push(name.to_owned());
        }
    }
    for name in used {
        if ["std", "crate", "super", "self"].contains(&name.as_str()) {
            continue;
        }
        assert!(
            dependencies.contains_key(&name),
            "src/main.rs uses {name}, which [dependencies] does not list"
        );
    }
}

/// The region `name` of `snippets/text/outputs.txt`, without marker lines.
fn text_region(name: &str) -> Vec<String> {
    let text = read(&docs().join("snippets/text/outputs.txt"));
    let start = format!("# region: {name}");
    let end = format!("# endregion: {name}");
    let body = text
        .split_once(&start)
        .and_then(|(_, rest)| rest.split_once(&end))
        .unwrap_or_else(|| panic!("outputs.txt has no region {name}"))
        .0;
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The plain-text blocks (`snippets/text/outputs.txt`) say what the code does.
#[test]
fn shown_text_matches_the_code() {
    // The cache's Redis namespaces: every one the drivers write is shown, and no other.
    let sources = [
        "core-db/src/infra/cache/redis.rs",
        "core-db/src/infra/cache/tiered.rs",
    ];
    let mut in_code: Vec<String> = Vec::new();
    for source in sources {
        let text = read(&workspace().join(source));
        for piece in text.split("format!(\"{prefix}:").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            in_code.push(name);
        }
    }
    in_code.sort();
    in_code.dedup();
    let mut shown: Vec<String> = text_region("cache-keys")
        .iter()
        .map(|line| {
            let rest = line.strip_prefix("{app}:").expect("{app}: first");
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .collect();
    shown.sort();
    assert_eq!(
        shown, in_code,
        "the cache's key namespaces (Caching page, Key layout)"
    );

    // The failed-jobs commands: those of core_jobs::cli::FAILED_USAGE, with their arguments.
    let usage = core_jobs::cli::FAILED_USAGE
        .strip_prefix("usage: jobs failed ")
        .expect("usage");
    let (commands, ages) = usage.split_once(" (").expect("the ages");
    let mut listed: Vec<String> = commands.split(" | ").map(str::to_owned).collect();
    let mut shown = Vec::new();
    for line in text_region("failed-jobs-cli") {
        let (command, _) = line
            .split_once("  ")
            .expect("a command, then its description");
        let command = command.strip_prefix("jobs failed ").expect("jobs failed …");
        shown.push(command.to_owned());
        if let Some((_, examples)) = line.split_once("AGE (") {
            assert_eq!(examples, ages, "the age examples");
        }
    }
    listed.sort();
    shown.sort();
    assert_eq!(
        shown, listed,
        "the commands of core_jobs::cli::FAILED_USAGE"
    );
    let cli = read(&workspace().join("core-jobs/src/cli.rs"));
    assert!(
        cli.contains("default_value = \"50\""),
        "list's default limit is 50"
    );

    // The SKIPPED line: test-support's format, for a test of the Testing page's examples.
    let [line]: [String; 1] = text_region("skipped").try_into().expect("one line");
    let support = read(&workspace().join("test-support/src/lib.rs"));
    assert!(support.contains(
        "\"SKIPPED {test}: {service} not reachable at {url} ({error}); start it with: {how}\\n\""
    ));
    let how = support
        .split_once("const REDIS_HOW: &str = \"")
        .and_then(|(_, rest)| rest.split_once("\";"))
        .expect("REDIS_HOW")
        .0;
    let test = "redis_gets_a_fresh_prefix";
    assert!(read(&docs().join("snippets/testing.rs")).contains(&format!("async fn {test}()")));
    assert_eq!(
        line,
        format!(
            "SKIPPED {test}: Redis not reachable at redis://127.0.0.1:6379 (…); start it with: {how}"
        )
    );
}
