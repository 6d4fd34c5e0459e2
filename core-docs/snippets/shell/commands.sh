# Command lines the docs site shows that the test suite cannot run as they stand (they serve,
# migrate a real database, edit a manifest or test a whole crate). Not run by bash:
# core-docs/tests/commands.rs checks every line of every region: each package named by `-p` is
# a workspace member, each `--features` one of its features, each app command one the app has,
# each crate `cargo add` names a workspace dependency, each script exists, and each
# `VARIABLE=value` before a command is a real setting that accepts the value.

# region: two-commands
cargo run -p app        # serves http://127.0.0.1:3000 (PORT overrides) on SQLite + an in-memory cache
scripts/test            # every check; ends with one `summary:` line
# endregion: two-commands

# region: migrate
cargo run -p app -- migrate
# endregion: migrate

# region: json-logs
LOG_FORMAT=json LOG_LEVEL=core_web=debug,info cargo run -p app
# endregion: json-logs

# region: add-test-support
cargo add --dev test-support tokio
# endregion: add-test-support

# region: require-services
RUSTFORGE_REQUIRE_SERVICES=1 cargo test
# endregion: require-services
