//! `:name` placeholder replacement.

use std::fmt::Display;

use core_i18n::{add_catalog, interpolate, sync_scope, t_args, t_args_in};

#[test]
fn replaces_named_placeholders() {
    add_catalog(
        "en",
        r#"{"ph": {"files": ":count files uploaded by :user"}}"#,
    )
    .unwrap();
    assert_eq!(
        t_args("ph.files", &[("user", &"Ada"), ("count", &3)]),
        "3 files uploaded by Ada"
    );
}

#[test]
fn longer_names_win_over_prefixes_in_any_order() {
    let template = ":name has :names and :name_full";
    let expected = "Ada has Ada, Bob and Ada Lovelace";
    let name: &dyn Display = &"Ada";
    let names: &dyn Display = &"Ada, Bob";
    let full: &dyn Display = &"Ada Lovelace";
    for args in [
        [("name", name), ("names", names), ("name_full", full)],
        [("names", names), ("name_full", full), ("name", name)],
        [("name_full", full), ("name", name), ("names", names)],
    ] {
        assert_eq!(interpolate(template, &args), expected);
    }
}

#[test]
fn placeholders_without_argument_stay_as_written() {
    assert_eq!(
        interpolate("Hi :name, :missing and :", &[("name", &"Ada")]),
        "Hi Ada, :missing and :"
    );
    assert_eq!(interpolate("Hi :name", &[]), "Hi :name");
    assert_eq!(interpolate(":", &[("a", &1)]), ":");
    assert_eq!(interpolate("::a::", &[("a", &1)]), ":1::");
    assert_eq!(interpolate("12:30", &[("a", &1)]), "12:30");
}

#[test]
fn repeated_adjacent_and_edge_placeholders() {
    let args: &[(&str, &dyn Display)] = &[("a", &"A"), ("b", &"B")];
    assert_eq!(interpolate(":a:b:a", args), "ABA");
    assert_eq!(interpolate(":a", args), "A");
    assert_eq!(interpolate("x:a", args), "xA");
    assert_eq!(interpolate("", args), "");
    assert_eq!(interpolate("no placeholders", args), "no placeholders");
}

#[test]
fn values_are_not_rescanned() {
    let args: &[(&str, &dyn Display)] = &[("a", &":b"), ("b", &"B")];
    assert_eq!(interpolate(":a :b", args), ":b B");
}

#[test]
fn unicode_around_placeholders() {
    let args: &[(&str, &dyn Display)] = &[("name", &"小明"), ("n", &5)];
    assert_eq!(
        interpolate("你好:name欢迎，共:n条", args),
        "你好小明欢迎，共5条"
    );
    assert_eq!(interpolate("émoji 🎉:name🎉", args), "émoji 🎉小明🎉");
}

#[test]
fn leading_colon_and_empty_names() {
    assert_eq!(interpolate("Hi :name", &[(":name", &"Ada")]), "Hi Ada");
    assert_eq!(
        interpolate("Hi :name", &[("", &"X"), (":", &"Y")]),
        "Hi :name"
    );
}

#[test]
fn first_duplicate_argument_wins() {
    assert_eq!(interpolate(":a", &[("a", &1), ("a", &2)]), "1");
}

#[test]
fn display_values_of_any_type() {
    let args: &[(&str, &dyn Display)] = &[("int", &-7), ("float", &1.5), ("ch", &'x')];
    assert_eq!(interpolate(":int :float :ch", args), "-7 1.5 x");
}

#[test]
fn args_apply_to_the_key_fallback() {
    assert_eq!(
        t_args("ph.missing :name", &[("name", &"Ada")]),
        "ph.missing Ada"
    );
    assert_eq!(
        t_args_in("zh", "Hello, :name!", &[("name", &"Ada")]),
        "Hello, Ada!"
    );
}

#[test]
fn explicit_and_scoped_locales() {
    add_catalog("en", r#"{"ph": {"greet": "Hello, :name!"}}"#).unwrap();
    add_catalog("zh", r#"{"ph": {"greet": "你好，:name！"}}"#).unwrap();
    let args: &[(&str, &dyn Display)] = &[("name", &"Ada")];
    assert_eq!(t_args_in("zh_CN", "ph.greet", args), "你好，Ada！");
    assert_eq!(t_args_in("fr", "ph.greet", args), "Hello, Ada!");
    assert_eq!(t_args("ph.greet", args), "Hello, Ada!");
    assert_eq!(sync_scope("zh", || t_args("ph.greet", args)), "你好，Ada！");
}
