//! Lock discipline: translating from inside a translation never deadlocks.
//!
//! Kept in its own test binary: with a deadlock, the stuck reader would hold
//! the store's lock and hang every other test of the binary.

use std::fmt::Display;

use core_i18n::{add_catalog, t_args};

/// An argument whose `Display` translates another key while the outer
/// translation is being built (must not deadlock on the store's lock).
struct Translated(&'static str);

impl Display for Translated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&core_i18n::t(self.0))
    }
}

#[test]
fn display_arguments_may_translate_too() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};

    add_catalog(
        "en",
        r#"{"ph": {"field": "e-mail", "required": "The :field is required"}}"#,
    )
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // A writer keeps the lock contended meanwhile.
    let writer_done = Arc::clone(&done);
    std::thread::spawn(move || {
        while !writer_done.load(Ordering::Relaxed) {
            add_catalog("en", r#"{"ph": {"noise": "x"}}"#).unwrap();
        }
    });
    // Detached threads: a deadlock fails the test instead of hanging it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..2_000 {
            let message = t_args("ph.required", &[("field", &Translated("ph.field"))]);
            assert_eq!(message, "The e-mail is required");
        }
        tx.send(()).unwrap();
    });
    let finished = rx.recv_timeout(std::time::Duration::from_secs(30));
    done.store(true, Ordering::Relaxed);
    finished.expect("translating inside a Display argument deadlocked or panicked");
}
