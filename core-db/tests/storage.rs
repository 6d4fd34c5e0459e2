//! The behaviour every storage driver must have, written once (`cases`) and run against the local
//! driver and the S3 driver (`suite!` below). The S3 runs need the S3-protocol server at
//! `S3_ENDPOINT` (`scripts/s3-server` starts one); without it they print one SKIPPED line, or
//! fail under `RUSTFORGE_REQUIRE_SERVICES=1`.

mod storage_support;

mod cases {
    use std::time::Duration;

    use bytes::Bytes;
    use core_db::Error;
    use core_db::storage::{ByteStream, MAX_KEY_LEN, MAX_SEGMENT_LEN};
    use futures_util::StreamExt;

    use crate::storage_support::{Fixture, check_pattern, http, pattern_stream};

    fn text(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    async fn collect(stream: ByteStream<'static>) -> Vec<u8> {
        let chunks: Vec<_> = stream.collect().await;
        chunks
            .into_iter()
            .flat_map(|c| c.expect("chunk").to_vec())
            .collect()
    }

    pub async fn put_get_exists(fx: &Fixture) {
        let s = &fx.storage;
        assert_eq!(s.driver(), fx.driver);
        assert_eq!(s.get("docs/a.txt").await.unwrap(), None);
        assert!(!s.exists("docs/a.txt").await.unwrap());
        assert!(s.get_stream("docs/a.txt").await.unwrap().is_none());
        s.put("docs/a.txt", text("hello"), "text/plain")
            .await
            .unwrap();
        assert_eq!(s.get("docs/a.txt").await.unwrap(), Some(text("hello")));
        assert!(s.exists("docs/a.txt").await.unwrap());
        // A prefix of a key is not an object.
        assert!(!s.exists("docs").await.unwrap());
        assert_eq!(s.get("docs").await.unwrap(), None);
        assert_eq!(fx.leftovers().await, vec!["docs/a.txt".to_owned()]);
    }

    pub async fn put_replaces(fx: &Fixture) {
        let s = &fx.storage;
        s.put("k.bin", text("first version"), "application/octet-stream")
            .await
            .unwrap();
        s.put("k.bin", text("v2"), "application/octet-stream")
            .await
            .unwrap();
        assert_eq!(s.get("k.bin").await.unwrap(), Some(text("v2")));
        // No temporary file, no second object.
        assert_eq!(fx.leftovers().await, vec!["k.bin".to_owned()]);
    }

    pub async fn empty_objects(fx: &Fixture) {
        let s = &fx.storage;
        s.put("empty", Bytes::new(), "text/plain").await.unwrap();
        assert!(s.exists("empty").await.unwrap());
        assert_eq!(s.get("empty").await.unwrap(), Some(Bytes::new()));
        let n = s
            .put_stream(
                "empty2",
                futures_util::stream::empty().boxed(),
                "text/plain",
            )
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(s.get("empty2").await.unwrap(), Some(Bytes::new()));
    }

    pub async fn delete_is_idempotent(fx: &Fixture) {
        let s = &fx.storage;
        s.put("a/b/c.txt", text("x"), "text/plain").await.unwrap();
        s.put("a/keep.txt", text("y"), "text/plain").await.unwrap();
        s.delete("a/b/c.txt").await.unwrap();
        assert!(!s.exists("a/b/c.txt").await.unwrap());
        assert_eq!(s.get("a/b/c.txt").await.unwrap(), None);
        s.delete("a/b/c.txt").await.unwrap();
        s.delete("never/was/there").await.unwrap();
        assert_eq!(fx.leftovers().await, vec!["a/keep.txt".to_owned()]);
        assert_eq!(s.get("a/keep.txt").await.unwrap(), Some(text("y")));
    }

    pub async fn streams_in_and_out(fx: &Fixture) {
        let s = &fx.storage;
        let n = s
            .put_stream(
                "streamed.bin",
                pattern_stream(100_003, 1_000),
                "application/octet-stream",
            )
            .await
            .unwrap();
        assert_eq!(n, 100_003);
        let back = s.get_stream("streamed.bin").await.unwrap().expect("object");
        assert_eq!(check_pattern(back).await, 100_003);
        assert_eq!(s.get("streamed.bin").await.unwrap().unwrap().len(), 100_003);
    }

    pub async fn put_reader_reads_everything(fx: &Fixture) {
        let s = &fx.storage;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut reader = &data[..];
        let n = s
            .put_reader("read.bin", &mut reader, "application/octet-stream")
            .await
            .unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(s.get("read.bin").await.unwrap().unwrap(), data);
    }

    /// Longer than two S3 test parts, in chunks that do not line up with part boundaries.
    pub async fn multipart_sized_bodies(fx: &Fixture) {
        let s = &fx.storage;
        let len = 11 * 1024 * 1024 + 123;
        let n = s
            .put_stream(
                "big/eleven.bin",
                pattern_stream(len, 777_777),
                "application/octet-stream",
            )
            .await
            .unwrap();
        assert_eq!(n, len);
        let back = s
            .get_stream("big/eleven.bin")
            .await
            .unwrap()
            .expect("object");
        assert_eq!(check_pattern(back).await, len);
        assert_eq!(fx.leftovers().await, vec!["big/eleven.bin".to_owned()]);
        // A whole body handed over in memory takes the same path.
        let whole: Vec<u8> = collect(pattern_stream(6 * 1024 * 1024, 1 << 20)).await;
        s.put(
            "big/six.bin",
            Bytes::from(whole.clone()),
            "application/octet-stream",
        )
        .await
        .unwrap();
        assert_eq!(s.get("big/six.bin").await.unwrap().unwrap(), whole);
    }

    /// A body that fails half-way stores nothing and leaves the previous object as it was.
    pub async fn failed_stream_stores_nothing(fx: &Fixture) {
        let s = &fx.storage;
        s.put("doc.bin", text("previous"), "application/octet-stream")
            .await
            .unwrap();
        for fail_after in [0u64, 100, 6 * 1024 * 1024, 11 * 1024 * 1024] {
            let body = pattern_stream(fail_after, 64 * 1024)
                .chain(futures_util::stream::once(async {
                    Err(std::io::Error::other("client went away"))
                }))
                .boxed();
            let err = s
                .put_stream("doc.bin", body, "application/octet-stream")
                .await
                .expect_err("a failing body fails the put");
            assert!(matches!(err, Error::Io(_)), "{err:?}");
            let err = s
                .put_stream(
                    "new.bin",
                    pattern_stream(fail_after, 64 * 1024)
                        .chain(futures_util::stream::once(async {
                            Err(std::io::Error::other("boom"))
                        }))
                        .boxed(),
                    "application/octet-stream",
                )
                .await
                .expect_err("a failing body fails the put");
            assert!(matches!(err, Error::Io(_)), "{err:?}");
        }
        assert_eq!(s.get("doc.bin").await.unwrap(), Some(text("previous")));
        assert!(!s.exists("new.bin").await.unwrap());
        // No temporary files, no unfinished multipart uploads.
        assert_eq!(fx.leftovers().await, vec!["doc.bin".to_owned()]);
    }

    pub async fn unusual_but_valid_keys(fx: &Fixture) {
        let s = &fx.storage;
        let keys = [
            "with space/ünïcödé ✓.txt".to_owned(),
            "plus+and%25percent/q?a=b#frag.txt".to_owned(),
            ".hidden/..dots../x".to_owned(),
            "a".repeat(200),
        ];
        for (i, key) in keys.iter().enumerate() {
            let key = key.as_str();
            let body = text(&format!("object {i}"));
            s.put(key, body.clone(), "text/plain").await.unwrap();
            assert_eq!(s.get(key).await.unwrap(), Some(body.clone()), "{key}");
            let url = s.url(key).unwrap();
            let fetched = http("GET", &url, b"").await;
            assert_eq!(fetched.status, 200, "GET {url}");
            assert_eq!(fetched.body, body.to_vec(), "GET {url}");
        }
        let mut left = fx.leftovers().await;
        let mut want = keys.to_vec();
        left.sort();
        want.sort();
        assert_eq!(left, want);
    }

    pub async fn url_is_the_public_base_plus_the_encoded_key(fx: &Fixture) {
        let url = fx.storage.url("a/b c/ü.png").unwrap();
        assert!(url.starts_with("http://"), "{url}");
        assert!(url.ends_with("/a/b%20c/%C3%BC.png"), "{url}");
    }

    pub async fn presigned_get(fx: &Fixture) {
        let s = &fx.storage;
        s.put(
            "private/report.pdf",
            text("%PDF-1.4 secret"),
            "application/pdf",
        )
        .await
        .unwrap();
        let url = s
            .presign_get("private/report.pdf", Duration::from_secs(300))
            .await
            .unwrap();
        assert!(url.starts_with("http://"), "{url}");
        let response = http("GET", &url, b"").await;
        assert_eq!(response.status, 200, "GET {url}");
        assert_eq!(response.body, b"%PDF-1.4 secret");
    }

    pub async fn presigned_put(fx: &Fixture) {
        let s = &fx.storage;
        let url = s
            .presign_put("incoming/upload.txt", Duration::from_secs(300))
            .await
            .unwrap();
        let response = http("PUT", &url, b"uploaded by a browser").await;
        assert_eq!(
            response.status,
            200,
            "PUT {url}: {}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(
            s.get("incoming/upload.txt").await.unwrap(),
            Some(text("uploaded by a browser"))
        );
    }

    pub async fn traversal_is_rejected(fx: &Fixture) {
        let s = &fx.storage;
        s.put("inside.txt", text("in"), "text/plain").await.unwrap();
        let long = "a/".repeat(MAX_KEY_LEN / 2) + "b";
        let bad = [
            "",
            "..",
            "../outside.txt",
            "../../../../etc/passwd",
            "a/../../outside.txt",
            "a/./b",
            "/etc/passwd",
            "/",
            "a\\..\\..\\outside.txt",
            "..\\outside.txt",
            "a//b",
            "a/",
            "nul\0byte",
            "line\nbreak",
            "C:/Windows/win.ini",
            long.as_str(),
        ];
        for key in bad {
            let what = format!("key {key:?} on {}", fx.driver);
            let invalid = |r: core_db::Result<()>, op: &str| match r {
                Err(Error::InvalidKey { .. }) => {}
                other => panic!("{op} with {what} was not rejected: {other:?}"),
            };
            invalid(s.put(key, text("x"), "text/plain").await, "put");
            invalid(
                s.put_stream(key, pattern_stream(10, 5), "text/plain")
                    .await
                    .map(|_| ()),
                "put_stream",
            );
            let mut reader = &b"x"[..];
            invalid(
                s.put_reader(key, &mut reader, "text/plain")
                    .await
                    .map(|_| ()),
                "put_reader",
            );
            invalid(s.get(key).await.map(|_| ()), "get");
            invalid(s.get_stream(key).await.map(|_| ()), "get_stream");
            invalid(s.exists(key).await.map(|_| ()), "exists");
            invalid(s.delete(key).await, "delete");
            invalid(s.url(key).map(|_| ()), "url");
            invalid(
                s.presign_get(key, Duration::from_secs(60))
                    .await
                    .map(|_| ()),
                "presign_get",
            );
            invalid(
                s.presign_put(key, Duration::from_secs(60))
                    .await
                    .map(|_| ()),
                "presign_put",
            );
        }
        assert_eq!(fx.leftovers().await, vec!["inside.txt".to_owned()]);
        assert_eq!(fx.outside_root(), Vec::<String>::new());
    }

    /// `verify_signed_url` takes the links the app serves itself: the local driver's presigned
    /// links, for their key and method until they expire; the S3 driver's links are checked by
    /// the bucket, so none verifies at the app.
    pub async fn verify_signed_url_checks_app_links(fx: &Fixture) {
        let s = &fx.storage;
        let link = s
            .presign_get("docs/a.pdf", Duration::from_secs(60))
            .await
            .unwrap();
        let query = link.split_once('?').map_or("", |(_, q)| q);
        let now = std::time::SystemTime::now();
        let later = now + Duration::from_secs(3600);
        let refused = |r: core_db::Result<()>, what: &str| match r {
            Err(Error::InvalidSignature { .. }) => {}
            other => panic!("{what} on {} was not refused: {other:?}", fx.driver),
        };
        if fx.driver == "local" {
            s.verify_signed_url("GET", "docs/a.pdf", query, now)
                .unwrap();
        } else {
            refused(
                s.verify_signed_url("GET", "docs/a.pdf", query, now),
                "own link",
            );
        }
        refused(
            s.verify_signed_url("GET", "docs/a.pdf", query, later),
            "expired",
        );
        refused(
            s.verify_signed_url("GET", "docs/b.pdf", query, now),
            "other key",
        );
        refused(
            s.verify_signed_url("PUT", "docs/a.pdf", query, now),
            "other method",
        );
        refused(
            s.verify_signed_url("GET", "docs/a.pdf", "", now),
            "no query",
        );
        assert!(matches!(
            s.verify_signed_url("GET", "../a.pdf", query, now),
            Err(Error::InvalidKey { .. })
        ));
    }

    /// A segment longer than a file name may be is an invalid key on every driver, not an I/O
    /// error; the longest allowed one works everywhere.
    pub async fn overlong_segments_are_invalid_keys(fx: &Fixture) {
        let s = &fx.storage;
        let longest = format!("dir/{}", "a".repeat(MAX_SEGMENT_LEN));
        s.put(&longest, text("fits"), "text/plain").await.unwrap();
        assert_eq!(s.get(&longest).await.unwrap(), Some(text("fits")));
        s.delete(&longest).await.unwrap();
        for key in [
            format!("dir/{}", "a".repeat(300)),
            format!("{}/file.txt", "é".repeat(128)),
            "b".repeat(MAX_SEGMENT_LEN + 1),
        ] {
            let what = format!("{} bytes on {}", key.len(), fx.driver);
            let invalid = |r: core_db::Result<()>, op: &str| match r {
                Err(Error::InvalidKey { reason, .. }) => {
                    assert!(reason.contains("255"), "{op} {what}: {reason}")
                }
                other => panic!("{op} with {what} was not an invalid key: {other:?}"),
            };
            invalid(s.put(&key, text("x"), "text/plain").await, "put");
            invalid(
                s.put_stream(&key, pattern_stream(10, 5), "text/plain")
                    .await
                    .map(|_| ()),
                "put_stream",
            );
            invalid(s.get(&key).await.map(|_| ()), "get");
            invalid(s.get_stream(&key).await.map(|_| ()), "get_stream");
            invalid(s.exists(&key).await.map(|_| ()), "exists");
            invalid(s.delete(&key).await, "delete");
            invalid(s.url(&key).map(|_| ()), "url");
            invalid(
                s.presign_get(&key, Duration::from_secs(60))
                    .await
                    .map(|_| ()),
                "presign_get",
            );
        }
        assert_eq!(fx.leftovers().await, Vec::<String>::new());
    }

    pub async fn errors_name_the_key_and_reason(fx: &Fixture) {
        let err = fx.storage.get("../x").await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"../x\""), "{message}");
        assert!(message.contains("`..`"), "{message}");
    }
}

/// Instantiates every case for one driver: `suite!(module, fixture_fn)`.
macro_rules! suite {
    ($driver:ident, $fixture:path) => {
        suite!(@cases $driver, $fixture, [
            put_get_exists,
            put_replaces,
            empty_objects,
            delete_is_idempotent,
            streams_in_and_out,
            put_reader_reads_everything,
            multipart_sized_bodies,
            failed_stream_stores_nothing,
            unusual_but_valid_keys,
            url_is_the_public_base_plus_the_encoded_key,
            presigned_get,
            presigned_put,
            traversal_is_rejected,
            overlong_segments_are_invalid_keys,
            verify_signed_url_checks_app_links,
            errors_name_the_key_and_reason,
        ]);
    };
    (@cases $driver:ident, $fixture:path, [$($case:ident),* $(,)?]) => {
        mod $driver {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!("storage::", stringify!($driver), "::", stringify!($case));
                    let Some(fx) = $fixture(test).await else { return };
                    crate::cases::$case(&fx).await;
                }
            )*
        }
    };
}

suite!(local, crate::storage_support::local);
suite!(s3, crate::storage_support::s3);

/// What only the local driver has: a root on a filesystem with symbolic links, and signed URLs
/// that the app's route checks.
mod local_only {
    use std::time::Duration;

    use core_db::Error;
    use core_db::storage::{LocalStorage, Storage, StorageConfig};

    use crate::storage_support::{http, local};

    #[tokio::test]
    async fn symbolic_links_cannot_leave_the_root() {
        let fx = local("symbolic_links_cannot_leave_the_root").await.unwrap();
        let dir = fx.local_dir().unwrap().to_path_buf();
        let s = &fx.storage;
        s.put("inside.txt", "in".into(), "text/plain")
            .await
            .unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        std::fs::write(dir.join("outside/secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.join("outside"), dir.join("root/link")).unwrap();
        std::os::unix::fs::symlink(dir.join("outside/secret.txt"), dir.join("root/file-link"))
            .unwrap();
        for key in ["link/secret.txt", "file-link"] {
            let leaked = s.get(key).await;
            assert!(
                matches!(leaked, Err(Error::InvalidKey { .. })),
                "{key}: {leaked:?}"
            );
            assert!(
                matches!(s.exists(key).await, Err(Error::InvalidKey { .. })),
                "{key}"
            );
            assert!(s.get_stream(key).await.is_err(), "{key}");
        }
        let written = s.put("link/new.txt", "x".into(), "text/plain").await;
        assert!(
            matches!(written, Err(Error::InvalidKey { .. })),
            "{written:?}"
        );
        assert!(!dir.join("outside/new.txt").exists());
        // Deleting through a linked directory leaves the target alone.
        s.delete("link/secret.txt").await.unwrap_err();
        assert!(dir.join("outside/secret.txt").exists());
        // Replacing a linked file replaces the link, not its target.
        s.put("file-link", "replaced".into(), "text/plain")
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("outside/secret.txt")).unwrap(),
            "secret"
        );
        assert_eq!(
            s.get("file-link").await.unwrap().as_deref(),
            Some(&b"replaced"[..])
        );
    }

    #[tokio::test]
    async fn the_route_refuses_forged_or_misused_links() {
        let fx = local("the_route_refuses_forged_or_misused_links")
            .await
            .unwrap();
        let s = &fx.storage;
        s.put("private.txt", "secret".into(), "text/plain")
            .await
            .unwrap();
        let get_url = s
            .presign_get("private.txt", Duration::from_secs(60))
            .await
            .unwrap();
        let put_url = s
            .presign_put("private.txt", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(http("GET", &get_url, b"").await.status, 200);
        let forged = format!(
            "{}0",
            get_url.trim_end_matches(|c: char| c.is_ascii_hexdigit())
        );
        assert_eq!(http("GET", &forged, b"").await.status, 403, "{forged}");
        let other_key = get_url.replace("private.txt", "other.txt");
        assert_eq!(http("GET", &other_key, b"").await.status, 403);
        // A GET link does not allow a PUT, nor a PUT link a GET.
        assert_eq!(http("PUT", &get_url, b"overwrite").await.status, 403);
        assert_eq!(http("GET", &put_url, b"").await.status, 403);
        let unsigned = get_url.split('?').next().unwrap();
        assert_eq!(http("PUT", unsigned, b"overwrite").await.status, 403);
        assert_eq!(
            s.get("private.txt").await.unwrap().as_deref(),
            Some(&b"secret"[..])
        );
        // Expired links are refused.
        let short = s
            .presign_get("private.txt", Duration::from_secs(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(http("GET", &short, b"").await.status, 403);
    }

    #[tokio::test]
    async fn a_shared_signing_key_works_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            root: dir.path().to_path_buf(),
            public_url: "https://files.example.test/".into(),
            signing_key: Some("shared".into()),
            ..StorageConfig::default()
        };
        let (a, b) = (
            LocalStorage::from_config(&config),
            LocalStorage::from_config(&config),
        );
        let url = a
            .presign_get("k.txt", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            url.starts_with("https://files.example.test/k.txt?expires="),
            "{url}"
        );
        b.verify("GET", "k.txt", url.split_once('?').unwrap().1)
            .unwrap();
        let random = LocalStorage::new(dir.path(), "/storage");
        assert!(
            random
                .verify("GET", "k.txt", url.split_once('?').unwrap().1)
                .is_err()
        );
        assert_eq!(
            a.path_for("x/y.txt").unwrap(),
            dir.path().join("x").join("y.txt")
        );
        assert!(a.path_for("x/../../y").is_err());
    }
}

/// What only the S3 driver has: configuration, part sizes, stored content types.
mod s3_only {
    use core_db::Error;
    use core_db::storage::{S3Storage, Storage, StorageConfig, StorageDriver, s3};

    use crate::storage_support::{TEST_PART_SIZE, pattern_stream, s3_config};

    #[test]
    fn configuration_errors_are_clear() {
        let no_bucket = S3Storage::from_config(&StorageConfig {
            driver: StorageDriver::S3,
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..StorageConfig::default()
        });
        match no_bucket {
            Err(Error::Config(m)) => assert!(m.contains("bucket"), "{m}"),
            other => panic!("{other:?}"),
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            let no_credentials = S3Storage::from_config(&StorageConfig {
                driver: StorageDriver::S3,
                bucket: Some("b".into()),
                ..StorageConfig::default()
            });
            match no_credentials {
                Err(Error::Config(m)) => assert!(m.contains("credentials"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn part_sizes_stay_within_what_s3_accepts() {
        let config = StorageConfig {
            driver: StorageDriver::S3,
            bucket: Some("b".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            public_url: "https://cdn.example.test/files/".into(),
            ..StorageConfig::default()
        };
        let storage = S3Storage::from_config(&config).unwrap();
        assert_eq!(storage.part_size(), s3::DEFAULT_PART_SIZE);
        assert_eq!(
            storage.clone().with_part_size(1).part_size(),
            s3::MIN_PART_SIZE
        );
        assert_eq!(
            storage.clone().with_part_size(usize::MAX).part_size(),
            s3::MAX_PART_SIZE
        );
        // A configured public URL (a CDN) wins over the bucket's own.
        assert_eq!(
            storage.url("a b.png").unwrap(),
            "https://cdn.example.test/files/a%20b.png"
        );
    }

    #[tokio::test]
    async fn content_types_are_stored() {
        let Some(bucket) = test_support::s3("s3_only::content_types_are_stored").await else {
            return;
        };
        let storage = S3Storage::from_config(&s3_config(&bucket))
            .unwrap()
            .with_part_size(TEST_PART_SIZE);
        assert_eq!(storage.bucket(), bucket.bucket);
        storage
            .put("small.pdf", "%PDF-1.4".into(), "application/pdf")
            .await
            .unwrap();
        storage
            .put_stream(
                "large.png",
                pattern_stream(6 * 1024 * 1024, 1 << 20),
                "image/png",
            )
            .await
            .unwrap();
        for (key, want) in [("small.pdf", "application/pdf"), ("large.png", "image/png")] {
            let head = bucket
                .client()
                .head_object()
                .bucket(&bucket.bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            assert_eq!(head.content_type(), Some(want), "{key}");
        }
        // Without a public URL, links point at the bucket on the endpoint (path style).
        assert_eq!(
            storage.url("x/y.txt").unwrap(),
            format!("{}/{}/x/y.txt", bucket.endpoint, bucket.bucket)
        );
    }
}
