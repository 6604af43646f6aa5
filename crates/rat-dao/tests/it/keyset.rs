//! Keyset pagination (issue 19) of the lists that grow: runs, audit entries
//! and a landing zone's files. Pages walked by cursor see every row once,
//! in the order of the offset pages, ties of the sort key included; and on
//! a seeded table each page is read in order off an index, never by a scan
//! or a sort of the whole table (`EXPLAIN`).

use rat_dao::{GenericClient, audit, landing, runs};
use rat_domain::{Cursor, PageRequest, RunId, RunSortField, RunStatus, Sort, ZoneId};
use rat_testkit::{TestDatabase, fixtures};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-03-01 00:00 UTC);

/// Every run of `filter` walked by cursor, `limit` at a time: the ids, and
/// the totals and `more` flags of the pages.
async fn walk_runs(
    client: &impl GenericClient,
    filter: &runs::RunFilter,
    sort: Sort<RunSortField>,
    limit: i64,
) -> (Vec<RunId>, Vec<(i64, bool)>) {
    let (mut ids, mut pages, mut after) = (Vec::new(), Vec::new(), None);
    for _ in 0..100 {
        let page = runs::list(
            client,
            filter,
            sort,
            PageRequest::new(Some(limit), None).unwrap(),
            after,
        )
        .await
        .unwrap();
        pages.push((page.total, page.more));
        ids.extend(page.items.iter().map(|r| r.id));
        if !page.more {
            return (ids, pages);
        }
        let last = page.items.last().unwrap();
        after = Some(Cursor {
            at: last.created_at,
            id: last.id,
        });
    }
    panic!("the walk did not end");
}

#[tokio::test]
async fn run_pages_by_cursor_see_every_run_once_in_the_offset_order() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let a = fixtures::published_pipeline(&client, "ns", "bronze", "a").await;
    let b = fixtures::published_pipeline(&client, "ns", "bronze", "b").await;
    // Eleven runs, with three pairs created at the same instant, so pages
    // end in the middle of a tie.
    let mut made = Vec::new();
    for i in 0..11_i64 {
        let pipeline = if i % 3 == 0 { &b } else { &a };
        made.push(
            fixtures::run_at(&client, pipeline, T0 + Duration::minutes(i / 2))
                .await
                .id,
        );
    }
    for descending in [true, false] {
        let sort = Sort {
            field: RunSortField::CreatedAt,
            descending,
        };
        let everything = runs::list(&client, &Default::default(), sort, PageRequest::first(200), None)
            .await
            .unwrap();
        assert_eq!(everything.items.len(), 11);
        assert!(!everything.more);
        let expected: Vec<RunId> = everything.items.iter().map(|r| r.id).collect();
        for limit in [1, 2, 3, 5, 11, 12] {
            let (ids, pages) = walk_runs(&client, &Default::default(), sort, limit).await;
            assert_eq!(ids, expected, "limit {limit}, descending {descending}");
            assert!(pages.iter().all(|(total, _)| *total == 11), "{pages:?}");
            let full_pages = (11 + limit - 1) / limit;
            assert_eq!(pages.len() as i64, full_pages, "no empty last page: {pages:?}");
        }
    }
    // Filters apply to every page, and the total counts the filtered set.
    let of_b = runs::RunFilter {
        pipeline_id: Some(b.id),
        ..Default::default()
    };
    let (ids, pages) = walk_runs(&client, &of_b, runs::DEFAULT_SORT, 2).await;
    let mut expected: Vec<RunId> = made.iter().step_by(3).copied().collect();
    expected.reverse();
    assert_eq!(ids.len(), 4);
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>(),
        expected.iter().collect()
    );
    assert!(pages.iter().all(|(total, _)| *total == 4));

    // Another order has no keyset.
    let by_status = Sort {
        field: RunSortField::Status,
        descending: false,
    };
    let cursor = Cursor { at: T0, id: made[0] };
    let err = runs::list(
        &client,
        &Default::default(),
        by_status,
        PageRequest::default(),
        Some(cursor),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, rat_dao::DaoError::Invalid { ref constraint } if constraint == "cursor"),
        "{err:?}"
    );
}

#[tokio::test]
async fn audit_and_file_pages_by_cursor_see_every_row_once() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    for i in 0..9_i64 {
        let entry = audit::NewAuditEntry {
            actor: if i % 2 == 0 { "alice" } else { "bob" }.to_owned(),
            action: "pipeline.create".to_owned(),
            object_type: None,
            object_id: None,
            details: None,
        };
        audit::insert(&client, &entry, T0 + Duration::seconds(i / 3))
            .await
            .unwrap();
    }
    for (filter, count) in [
        (audit::AuditFilter::default(), 9),
        (
            audit::AuditFilter {
                actor: Some("alice".to_owned()),
                ..Default::default()
            },
            5,
        ),
    ] {
        let all = audit::list(&client, &filter, PageRequest::first(200), None)
            .await
            .unwrap();
        let expected: Vec<Uuid> = all.items.iter().map(|e| e.id).collect();
        assert_eq!(expected.len(), count);
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = audit::list(&client, &filter, PageRequest::new(Some(2), None).unwrap(), after)
                .await
                .unwrap();
            assert_eq!(page.total, count as i64);
            seen.extend(page.items.iter().map(|e| e.id));
            if !page.more {
                break;
            }
            let last = page.items.last().unwrap();
            after = Some(Cursor {
                at: last.timestamp,
                id: last.id,
            });
        }
        assert_eq!(seen, expected);
    }

    fixtures::namespace(&client, "ns").await;
    let zone = landing::create(
        &client,
        &landing::NewLandingZone {
            namespace: rat_domain::NamespaceName::parse("ns").unwrap(),
            name: rat_domain::ZoneName::parse("drop").unwrap(),
            description: String::new(),
            owner: None,
            expected_schema: String::new(),
        },
    )
    .await
    .unwrap();
    client
        .execute(
            "INSERT INTO landing_files (zone_id, filename, s3_path, uploaded_at) \
             SELECT $1, 'f' || i, 'p/f' || i, $2::timestamptz + (i / 2) * interval '1 second' \
             FROM generate_series(1, 7) AS i",
            &[&zone.id, &T0],
        )
        .await
        .unwrap();
    let all = landing::list_files(&client, zone.id, PageRequest::first(200), None)
        .await
        .unwrap();
    let expected: Vec<Uuid> = all.items.iter().map(|f| f.id).collect();
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = landing::list_files(&client, zone.id, PageRequest::new(Some(3), None).unwrap(), after)
            .await
            .unwrap();
        assert_eq!(page.total, 7);
        seen.extend(page.items.iter().map(|f| f.id));
        if !page.more {
            break;
        }
        let last = page.items.last().unwrap();
        after = Some(Cursor {
            at: last.uploaded_at,
            id: last.id,
        });
    }
    assert_eq!(seen, expected);
}

/// Checks a plan reads `table` through an index, never scanning it. With
/// `sorted_set` the planner may sort what the index found (a set it
/// estimates small: a partial index, or a rare value in a time window);
/// otherwise the page is read in order off the index, no sort at all, and
/// the keyset comparison is an index condition.
fn assert_indexed(plan: &str, table: &str, sorted_set: bool, what: &str) {
    assert!(!plan.contains(&format!("Seq Scan on {table}")), "{what}: {plan}");
    assert!(plan.contains("Index"), "{what}: {plan}");
    if !sorted_set {
        assert!(
            !plan.contains("Sort"),
            "{what}: the page is read in order off the index: {plan}"
        );
        assert!(
            plan.lines()
                .any(|line| line.contains("Index Cond") && line.contains("ROW(")),
            "{what}: the cursor is an index condition: {plan}"
        );
    }
}

#[tokio::test]
async fn cursor_pages_are_read_in_order_off_an_index() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let a = fixtures::published_pipeline(&client, "ns", "bronze", "a").await;
    let b = fixtures::published_pipeline(&client, "ns", "bronze", "b").await;
    fixtures::namespace(&client, "ns").await;
    let zone = landing::create(
        &client,
        &landing::NewLandingZone {
            namespace: rat_domain::NamespaceName::parse("ns").unwrap(),
            name: rat_domain::ZoneName::parse("drop").unwrap(),
            description: String::new(),
            owner: None,
            expected_schema: String::new(),
        },
    )
    .await
    .unwrap();
    // Enough rows that a scan of the table costs more than an index walk.
    client
        .execute(
            "INSERT INTO runs (pipeline_id, status, created_at, version_number, published_versions) \
             SELECT CASE WHEN i % 100 = 0 THEN $1::uuid ELSE $2::uuid END, \
                    CASE WHEN i % 5 = 0 THEN 'running' ELSE 'success' END, \
                    $3::timestamptz - i * interval '1 second', 1, '{}' \
             FROM generate_series(1, 40000) AS i",
            &[&a.id, &b.id, &T0],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO audit_log (actor, action, timestamp) \
             SELECT 'user-' || (i % 50), 'action-' || (i % 200), $1::timestamptz - i * interval '1 second' \
             FROM generate_series(1, 40000) AS i",
            &[&T0],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO landing_files (zone_id, filename, s3_path, uploaded_at) \
             SELECT $1, 'f' || i, 'p/f' || i, $2::timestamptz - i * interval '1 second' \
             FROM generate_series(1, 40000) AS i",
            &[&zone.id, &T0],
        )
        .await
        .unwrap();
    client
        .batch_execute("ANALYZE runs, audit_log, landing_files")
        .await
        .unwrap();

    let (limit, offset) = (51_i64, 0_i64);
    let (at, run_id) = (T0 - Duration::hours(3), RunId::from(Uuid::max()));
    let newest = runs::DEFAULT_SORT;
    let oldest = Sort {
        field: RunSortField::CreatedAt,
        descending: false,
    };

    let sql = runs::list_statement(&Default::default(), newest, true);
    let plan = fixtures::explain(&client, &sql, &[&at, &run_id, &limit, &offset]).await;
    assert_indexed(&plan, "runs", false, "all runs, newest first");
    let sql = runs::list_statement(&Default::default(), oldest, true);
    let plan = fixtures::explain(&client, &sql, &[&at, &run_id, &limit, &offset]).await;
    assert_indexed(&plan, "runs", false, "all runs, oldest first");

    let of_a = runs::RunFilter {
        pipeline_id: Some(a.id),
        ..Default::default()
    };
    let sql = runs::list_statement(&of_a, newest, true);
    let plan = fixtures::explain(&client, &sql, &[&a.id, &at, &run_id, &limit, &offset]).await;
    assert_indexed(&plan, "runs", false, "one pipeline's runs");
    assert!(plan.contains("idx_runs_pipeline"), "{plan}");

    // A fifth of the runs running (thousands): the page is still read in
    // order off the partial index of active runs (V23), never sorted.
    let running = runs::RunFilter {
        status: Some(RunStatus::Running),
        ..Default::default()
    };
    let status = "running";
    let sql = runs::list_statement(&running, newest, true);
    let plan = fixtures::explain(&client, &sql, &[&status, &at, &run_id, &limit, &offset]).await;
    assert_indexed(&plan, "runs", false, "running runs");
    assert!(plan.contains("idx_runs_active_created"), "{plan}");

    // What a caller who is not an admin reads: the access rule in SQL.
    let readable = runs::RunFilter {
        readable_by: Some(vec!["alice".to_owned()]),
        ..Default::default()
    };
    let principals = vec!["alice".to_owned()];
    let sql = runs::list_statement(&readable, newest, true);
    let plan = fixtures::explain(&client, &sql, &[&principals, &at, &run_id, &limit, &offset]).await;
    assert_indexed(&plan, "runs", false, "readable runs");

    let entry_id = Uuid::max();
    let sql = audit::list_statement(&Default::default(), true);
    let plan = fixtures::explain(&client, &sql, &[&at, &entry_id, &limit, &offset]).await;
    assert_indexed(&plan, "audit_log", false, "all audit entries");
    let (since, until) = (T0 - Duration::hours(6), T0 - Duration::hours(1));
    // By actor and by action over a window, each off its own index; the
    // rare action's window may sort what its index condition left.
    let (actor, action) = ("user-7", "action-3");
    for (value, by_actor, index, may_sort, what) in [
        (
            actor,
            true,
            "idx_audit_log_actor",
            false,
            "an actor's entries in a window",
        ),
        (
            action,
            false,
            "idx_audit_log_action",
            true,
            "an action's entries in a window",
        ),
    ] {
        let filter = audit::AuditFilter {
            actor: by_actor.then(|| value.to_owned()),
            action: (!by_actor).then(|| value.to_owned()),
            since: Some(since),
            until: Some(until),
            ..Default::default()
        };
        let sql = audit::list_statement(&filter, true);
        let plan = fixtures::explain(
            &client,
            &sql,
            &[&value, &since, &until, &at, &entry_id, &limit, &offset],
        )
        .await;
        assert_indexed(&plan, "audit_log", may_sort, what);
        assert!(plan.contains(index), "{plan}");
    }

    let zone_id: ZoneId = zone.id;
    let sql = landing::list_files_statement(true);
    let plan = fixtures::explain(&client, &sql, &[&zone_id, &at, &entry_id, &limit, &offset]).await;
    assert_indexed(&plan, "landing_files", false, "a zone's files");
    assert!(plan.contains("idx_landing_files_zone"), "{plan}");
}
