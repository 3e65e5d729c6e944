//! Tests of the file source: row mapping for both formats, rejections with
//! `file:line`, and the per-file content cursor.

use super::*;
use crate::platforms::FetchedPage;
use crate::poll::Cursor;
use crate::timestamps::travtus_format;
use std::fs;

fn reader(platform: Option<&str>) -> FileReader {
    FileReader::new(&FileConfig {
        platform: platform.map(str::to_owned),
        base_dir: PathBuf::from("/"),
    })
}

/// Reads every page of one poll; returns the pages and the new state.
fn poll(reader: &FileReader, location: &str, state: Cursor) -> (Vec<FetchedPage>, Cursor) {
    let mut poll = reader.start_poll(&LocationId::new(location), state.position.as_deref());
    let mut pages = Vec::new();
    while let Some(page) = poll.next_page().expect("poll") {
        pages.push(page);
    }
    let position = Box::new(poll).position();
    (
        pages,
        Cursor {
            high_water: state.high_water,
            position,
        },
    )
}

fn jsonl(content: &str, platform: Option<&str>) -> FetchedPage {
    read_jsonl("f.jsonl", content.as_bytes(), platform, Utc::now())
}

fn csv(content: &str, platform: Option<&str>) -> FetchedPage {
    read_csv("f.csv", content.as_bytes(), platform, Utc::now())
}

#[test]
fn jsonl_rows_map_every_field() {
    let page = jsonl(
        concat!(
            r#"{"review_id":"a1","source":"tripadvisor","title":" Great ","comment":"Nice place","rating":5,"display_name":"Ann","is_anonymous":false,"created_datetime":"2024-01-02T03:04:05.678+01:00","updated_datetime":"2024-01-03 10:00:00","extra":"ignored"}"#,
            "\n\n   \n",
            r#"{"review_id":42,"rating":"3","is_anonymous":"true","created_datetime":1700000000,"updated_datetime":"1700000600"}"#,
            "\r\n",
            r#"{"review_id":"a3","created_datetime":"2024-02-01T00:00:00","rating":null,"comment":""}"#,
        ),
        Some("homegrown"),
    );
    assert!(page.rejected.is_empty(), "{:?}", page.rejected);
    let [a, b, c] = &page.reviews[..] else {
        panic!("three reviews expected, got {:?}", page.reviews);
    };
    assert_eq!(a.platform.as_str(), "tripadvisor");
    assert_eq!(a.review_id.as_str(), "a1");
    assert_eq!(a.title.as_deref(), Some("Great"));
    assert_eq!(a.comment.as_deref(), Some("Nice place"));
    assert_eq!(a.rating.map(Rating::get), Some(5));
    assert_eq!(a.display_name.as_deref(), Some("Ann"));
    assert_eq!(a.is_anonymous, Some(false));
    assert_eq!(travtus_format(a.created_at), "2024-01-02T02:04:05");
    assert_eq!(
        a.updated_at.map(travtus_format).as_deref(),
        Some("2024-01-03T10:00:00")
    );

    assert_eq!(
        b.platform.as_str(),
        "homegrown",
        "falls back to the config's platform"
    );
    assert_eq!(b.review_id.as_str(), "42");
    assert_eq!(b.rating.map(Rating::get), Some(3));
    assert_eq!(b.is_anonymous, Some(true));
    assert_eq!(travtus_format(b.created_at), "2023-11-14T22:13:20");
    assert_eq!(
        b.updated_at.map(travtus_format).as_deref(),
        Some("2023-11-14T22:23:20")
    );
    assert_eq!((b.title.as_ref(), b.comment.as_ref()), (None, None));

    assert_eq!(c.rating, None);
    assert_eq!(c.comment, None);
    assert_eq!(c.updated_at, None);
}

#[test]
fn a_leap_second_is_sent_as_the_second_before_in_every_text_form() {
    let page = jsonl(
        concat!(
            r#"{"review_id":"z","created_datetime":"2016-12-31T23:59:60Z"}"#,
            "\n",
            r#"{"review_id":"n","created_datetime":"2016-12-31 23:59:60.5"}"#,
            "\n",
        ),
        Some("homegrown"),
    );
    assert!(page.rejected.is_empty(), "{:?}", page.rejected);
    for r in &page.reviews {
        assert_eq!(travtus_format(r.created_at), "2016-12-31T23:59:59");
    }
    let page = csv(
        "review_id,created_datetime\nc,2017-01-01T00:59:60+01:00\n",
        Some("homegrown"),
    );
    assert!(page.rejected.is_empty(), "{:?}", page.rejected);
    assert_eq!(
        travtus_format(page.reviews[0].created_at),
        "2016-12-31T23:59:59"
    );
}

#[test]
fn jsonl_bad_rows_are_rejected_with_file_and_line() {
    let lines = [
        r#"{"review_id":"ok","created_datetime":"2024-01-01T00:00:00Z"}"#,
        r#"{"review_id":"r2","created_datetime":"2024-01-01T00:00:00Z","rating":6}"#,
        r#"not json at all"#,
        r#"[1,2]"#,
        r#"{"created_datetime":"2024-01-01T00:00:00Z"}"#,
        r#"{"review_id":"r6"}"#,
        r#"{"review_id":"r7","created_datetime":"last tuesday"}"#,
        r#"{"review_id":"r8","created_datetime":"2024-01-01T00:00:00Z","rating":"4.5"}"#,
        r#"{"review_id":"r9","created_datetime":"2024-01-01T00:00:00Z","is_anonymous":"maybe"}"#,
        r#"{"review_id":"","created_datetime":"2024-01-01T00:00:00Z"}"#,
        r#"{"review_id":"r11","created_datetime":"1960-01-01T00:00:00Z"}"#,
        r#"{"review_id":"r12","created_datetime":"2024-01-01T00:00:00Z","title":7}"#,
        r#"{"review_id":"r13","created_datetime":"2024-01-01T00:00:00Z"}"#,
    ];
    // Without a platform configured, a row without `source` is rejected.
    let page = jsonl(lines[0], None);
    let got: Vec<(&str, &str, &str)> = page
        .rejected
        .iter()
        .map(|r| (r.reference.as_str(), r.reason.as_str(), r.raw.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(
            "f.jsonl:1",
            "source: no source in the row and no `platform` in the source config",
            lines[0]
        )]
    );

    // With a platform configured, the other problems show.
    let page = jsonl(&lines.join("\n"), Some("p"));
    let raws: Vec<&str> = page.rejected.iter().map(|r| r.raw.as_str()).collect();
    assert_eq!(
        raws,
        lines[1..12].to_vec(),
        "each rejection keeps its raw line"
    );
    let reasons: Vec<(&str, &str)> = page
        .rejected
        .iter()
        .map(|r| (r.reference.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("f.jsonl:2", "rating: 6 is not within 1..5"),
            (
                "f.jsonl:3",
                "row: not JSON (expected ident at line 1 column 2)"
            ),
            ("f.jsonl:4", "row: an array is not an object"),
            ("f.jsonl:5", "review_id: missing"),
            ("f.jsonl:6", "created_datetime: missing"),
            (
                "f.jsonl:7",
                "created_datetime: \"last tuesday\" is not an RFC 3339, naive UTC or Unix-seconds time"
            ),
            (
                "f.jsonl:8",
                "rating: \"4.5\" is not a whole number within 1..5"
            ),
            ("f.jsonl:9", "is_anonymous: \"maybe\" is not true or false"),
            ("f.jsonl:10", "review_id: empty"),
            (
                "f.jsonl:11",
                "created_datetime: year 1960 is outside 1970..=9999"
            ),
            ("f.jsonl:12", "title: a number is not a string"),
        ]
    );
    let ids: Vec<&str> = page.reviews.iter().map(|r| r.review_id.as_str()).collect();
    assert_eq!(ids, vec!["ok", "r13"]);
}

#[test]
fn csv_rows_with_quoted_commas_and_newlines() {
    let content = "\u{feff}review_id,source,title,comment,rating,display_name,is_anonymous,created_datetime,updated_datetime\r\n\
        c1,yelp,\"Good, not great\",\"Line one\nline \"\"two\"\", with comma\",4,Bob,false,2024-03-01 12:00:00,\r\n\
        c2,,,,,,,1700000000,\n\
        c3,trustpilot,,Fine,9,,,2024-03-01T12:00:00Z,\n\
        c4,trustpilot,,\"Multi\nline\nbad\",2,,,not a date,\n\
        c5,trustpilot,too,few\n\
        ,trustpilot,,,,,,2024-03-01T12:00:00Z,\n";
    let page = csv(content, None);
    let [c1] = &page.reviews[..] else {
        panic!("one review expected, got {:?}", page.reviews);
    };
    assert_eq!(c1.platform.as_str(), "yelp");
    assert_eq!(c1.title.as_deref(), Some("Good, not great"));
    assert_eq!(
        c1.comment.as_deref(),
        Some("Line one\nline \"two\", with comma")
    );
    assert_eq!(c1.rating.map(Rating::get), Some(4));
    assert_eq!(c1.is_anonymous, Some(false));
    assert_eq!(travtus_format(c1.created_at), "2024-03-01T12:00:00");
    assert_eq!(c1.updated_at, None);

    let got: Vec<(&str, &str, &str)> = page
        .rejected
        .iter()
        .map(|r| (r.reference.as_str(), r.reason.as_str(), r.raw.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "f.csv:4",
                "source: no source in the row and no `platform` in the source config",
                "c2,,,,,,,1700000000,"
            ),
            (
                "f.csv:5",
                "rating: \"9\" is not a whole number within 1..5",
                "c3,trustpilot,,Fine,9,,,2024-03-01T12:00:00Z,"
            ),
            (
                "f.csv:6",
                "created_datetime: \"not a date\" is not an RFC 3339, naive UTC or Unix-seconds time",
                "c4,trustpilot,,\"Multi\nline\nbad\",2,,,not a date,"
            ),
            (
                "f.csv:9",
                "row: 4 fields, the header has 9",
                "c5,trustpilot,too,few"
            ),
            (
                "f.csv:10",
                "review_id: missing",
                ",trustpilot,,,,,,2024-03-01T12:00:00Z,"
            ),
        ]
    );

    // The same rows with a configured platform: c2 becomes a review.
    let page = csv(content, Some("partner"));
    let c2 = page
        .reviews
        .iter()
        .find(|r| r.review_id.as_str() == "c2")
        .expect("c2 with the default platform");
    assert_eq!(c2.platform.as_str(), "partner");
    assert_eq!(travtus_format(c2.created_at), "2023-11-14T22:13:20");
}

#[test]
fn csv_with_only_a_header_or_nothing_is_empty() {
    assert!(csv("review_id,created_datetime\n", None).reviews.is_empty());
    let page = csv("", None);
    assert!(page.reviews.is_empty() && page.rejected.is_empty());
}

#[test]
fn files_are_read_once_per_content_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.csv");
    fs::write(
        &a,
        r#"{"review_id":"a1","created_datetime":"2024-01-01T00:00:00Z"}"#,
    )
    .expect("write a");
    fs::write(&b, "review_id,created_datetime\nb1,2024-01-01T00:00:00Z\n").expect("write b");
    let pattern = format!("{}/*", dir.path().display());
    let reader = reader(Some("partner"));

    let (pages, state) = poll(&reader, &pattern, Cursor::default());
    let ids: Vec<Vec<&str>> = pages
        .iter()
        .map(|p| p.reviews.iter().map(|r| r.review_id.as_str()).collect())
        .collect();
    assert_eq!(
        ids,
        vec![vec!["a1"], vec!["b1"]],
        "sorted, one page per file"
    );
    let cursor: BTreeMap<String, String> =
        serde_json::from_str(state.position.as_deref().expect("cursor"))
            .expect("cursor is a JSON object");
    assert_eq!(cursor.len(), 2);
    assert_eq!(
        cursor
            .get(&a.to_string_lossy().into_owned())
            .map(String::len),
        Some(64),
        "sha256 hex"
    );

    // Nothing changed: no pages, same cursor.
    let (pages, again) = poll(&reader, &pattern, state.clone());
    assert!(pages.is_empty());
    assert_eq!(again, state);

    // b edited, a removed, c added.
    fs::write(
        &b,
        "review_id,created_datetime\nb1,2024-01-01T00:00:00Z\nb2,2024-01-02T00:00:00Z\n",
    )
    .expect("edit b");
    fs::remove_file(&a).expect("remove a");
    fs::write(dir.path().join("c.JSONL"), "").expect("write c");
    let (pages, next) = poll(&reader, &pattern, again);
    let counts: Vec<usize> = pages.iter().map(|p| p.reviews.len()).collect();
    assert_eq!(counts, vec![2, 0]);
    let cursor: BTreeMap<String, String> =
        serde_json::from_str(next.position.as_deref().expect("cursor")).expect("json");
    let names: Vec<String> = cursor
        .keys()
        .filter_map(|k| {
            Path::new(k)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(names, vec!["b.csv", "c.JSONL"], "vanished files drop out");
}

#[test]
fn a_single_path_a_missing_path_and_an_unreadable_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("one.jsonl");
    fs::write(
        &path,
        r#"{"review_id":"x","source":"s","created_datetime":"2024-01-01 00:00:00"}"#,
    )
    .expect("write");
    let reader = reader(None);
    let state = Cursor {
        high_water: None,
        position: Some("not json".into()),
    };
    let (pages, _) = poll(&reader, &path.to_string_lossy(), state);
    assert_eq!(pages.len(), 1, "an unreadable cursor means read everything");
    assert_eq!(pages[0].reviews[0].platform.as_str(), "s");

    let missing = dir.path().join("nothing-*.jsonl");
    let (pages, state) = poll(&reader, &missing.to_string_lossy(), Cursor::default());
    assert!(pages.is_empty());
    assert_eq!(state.position, None);
    let (pages, _) = poll(
        &reader,
        &dir.path().join("gone.csv").to_string_lossy(),
        Cursor::default(),
    );
    assert!(pages.is_empty());
}

#[test]
fn unreadable_files_and_bad_patterns_are_io_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = reader(None);
    let mut poll = reader.start_poll(&LocationId::new("/tmp/[unclosed"), None);
    assert!(matches!(poll.next_page(), Err(PlatformError::Io { .. })));

    // A file without read permission is an error naming it (unless the
    // tests run as root, who can read it anyway).
    let path = dir.path().join("locked.jsonl");
    fs::write(&path, "{}").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).expect("chmod");
        if fs::read(&path).is_err() {
            let mut poll = reader.start_poll(&LocationId::new(path.to_string_lossy()), None);
            match poll.next_page() {
                Err(PlatformError::Io { path: p, .. }) => assert!(p.ends_with("locked.jsonl")),
                other => panic!("expected Io, got {other:?}"),
            }
        }
    }
}

#[test]
fn matches_that_cannot_be_read_fail_the_poll_after_the_readable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("a.jsonl"),
        r#"{"review_id":"a1","created_datetime":"2024-01-01T00:00:00Z"}"#,
    )
    .expect("write a");
    fs::write(dir.path().join("notes.txt"), "not ours").expect("write txt");
    fs::create_dir(dir.path().join("sub.jsonl")).expect("a directory named like a file");
    let pattern = format!("{}/*", dir.path().display());
    let reader = reader(Some("partner"));
    let mut poll = reader.start_poll(&LocationId::new(&pattern), None);
    let page = poll
        .next_page()
        .expect("the readable file first")
        .expect("a page");
    assert_eq!(page.reviews[0].review_id.as_str(), "a1");
    match poll.next_page() {
        Err(PlatformError::Io { path, reason }) => {
            assert_eq!(path, pattern);
            assert_eq!(
                reason,
                format!(
                    "2 matched file(s) cannot be read: {0}/notes.txt: not a .jsonl or .csv file (narrow the glob to the files to read); {0}/sub.jsonl: a directory, not a regular file",
                    dir.path().display()
                )
            );
        }
        other => panic!("expected the unreadable matches, got {other:?}"),
    }

    let inspection = reader.inspect(&LocationId::new(&pattern));
    assert_eq!(inspection.files, [dir.path().join("a.jsonl")]);
    assert_eq!(inspection.problems.len(), 2);
    assert_eq!(
        inspection.summary(),
        format!("1 file(s): {}", dir.path().join("a.jsonl").display())
    );
}

#[test]
fn relative_locations_start_at_the_config_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The folder's own glob characters are not patterns.
    let base = dir.path().join("conf[1]");
    fs::create_dir_all(base.join("drop")).expect("mkdir");
    fs::write(
        base.join("drop/a.jsonl"),
        r#"{"review_id":"a1","created_datetime":"2024-01-01T00:00:00Z"}"#,
    )
    .expect("write");
    let reader = FileReader::new(&FileConfig {
        platform: Some("p".into()),
        base_dir: base.clone(),
    });
    let (pages, state) = poll(&reader, "drop/*.jsonl", Cursor::default());
    assert_eq!(pages.len(), 1);
    assert!(
        state
            .position
            .is_some_and(|c| c.contains(&base.join("drop/a.jsonl").display().to_string()))
    );
    assert_eq!(
        reader
            .inspect(&LocationId::new("drop/missing.jsonl"))
            .summary(),
        format!(
            "0 file(s): {}/drop/missing.jsonl does not exist",
            base.display()
        )
    );
}

#[test]
fn a_long_file_is_read_a_page_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: String = (0..2 * ROWS_PER_PAGE + 5)
        .map(|i| {
            format!("{{\"review_id\":\"r{i}\",\"created_datetime\":\"2024-01-01T00:00:00Z\"}}\n")
        })
        .collect();
    fs::write(dir.path().join("a.jsonl"), rows).expect("write");
    let reader = reader(Some("p"));
    let (pages, _) = poll(
        &reader,
        &dir.path().join("a.jsonl").to_string_lossy(),
        Cursor::default(),
    );
    let sizes: Vec<usize> = pages.iter().map(|p| p.reviews.len()).collect();
    assert_eq!(sizes, [ROWS_PER_PAGE, ROWS_PER_PAGE, 5]);
}
