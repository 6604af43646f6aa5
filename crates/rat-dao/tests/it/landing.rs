//! `landing` repository (zones and files) against a real PostgreSQL.

use rat_dao::{DaoError, GenericClient, landing, namespaces};
use rat_domain::{LandingZone, NamespaceName, PageRequest, ZoneName};
use rat_testkit::{TestDatabase, fixtures};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn ns(s: &str) -> NamespaceName {
    NamespaceName::parse(s).unwrap()
}

fn zone(s: &str) -> ZoneName {
    ZoneName::parse(s).unwrap()
}

fn new_zone(namespace: &str, name: &str) -> landing::NewLandingZone {
    landing::NewLandingZone {
        namespace: ns(namespace),
        name: zone(name),
        description: "Raw uploads".to_owned(),
        owner: Some("alice".to_owned()),
        expected_schema: "id INT, amount DECIMAL".to_owned(),
    }
}

fn new_file(zone_id: rat_domain::ZoneId, filename: &str, size_bytes: i64) -> landing::NewLandingFile {
    landing::NewLandingFile {
        s3_version_id: None,
        zone_id,
        filename: filename.to_owned(),
        s3_path: format!("default/landing/uploads/{filename}"),
        size_bytes,
        content_type: "text/csv".to_owned(),
        uploaded_by: Some("bob".to_owned()),
    }
}

async fn zone_in(client: &impl GenericClient, namespace: &str, name: &str) -> LandingZone {
    fixtures::namespace(client, namespace).await;
    landing::create(client, &new_zone(namespace, name)).await.unwrap()
}

#[tokio::test]
async fn zone_round_trips_every_column() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = landing::create(&client, &new_zone("default", "uploads")).await.unwrap();
    assert_eq!(created.namespace.as_str(), "default");
    assert_eq!(created.name.as_str(), "uploads");
    assert_eq!(created.description, "Raw uploads");
    assert_eq!(created.owner.as_deref(), Some("alice"));
    assert_eq!(created.expected_schema, "id INT, amount DECIMAL");
    assert_eq!(created.processed_max_age_days, None);
    assert!(!created.auto_purge);
    assert_eq!(created.created_at, created.updated_at);

    let fetched = landing::get(&client, &ns("default"), &zone("uploads")).await.unwrap();
    assert_eq!(fetched.zone, created);
    assert_eq!((fetched.file_count, fetched.total_bytes), (0, 0));
}

#[tokio::test]
async fn update_keeps_absent_fields_and_returns_the_statistics() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = zone_in(&client, "default", "uploads").await;
    landing::insert_file(&client, &new_file(created.id, "a.csv", 10), OffsetDateTime::now_utc())
        .await
        .unwrap();

    let updated = landing::update(
        &client,
        &ns("default"),
        &zone("uploads"),
        &landing::ZoneUpdate {
            description: Some("Daily drops".to_owned()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(updated.zone.description, "Daily drops");
    assert_eq!(updated.zone.owner.as_deref(), Some("alice"));
    assert_eq!(updated.zone.expected_schema, "id INT, amount DECIMAL");
    assert_eq!((updated.file_count, updated.total_bytes), (1, 10));
    assert!(
        updated.zone.updated_at > created.updated_at,
        "the trigger moves updated_at"
    );
    assert_eq!(updated.zone.created_at, created.created_at);

    let updated = landing::update(
        &client,
        &ns("default"),
        &zone("uploads"),
        &landing::ZoneUpdate {
            description: None,
            owner: Some("carol".to_owned()),
            expected_schema: Some(String::new()),
        },
    )
    .await
    .unwrap();
    assert_eq!(updated.zone.description, "Daily drops");
    assert_eq!(updated.zone.owner.as_deref(), Some("carol"));
    assert_eq!(updated.zone.expected_schema, "");
    assert_eq!(
        landing::get(&client, &ns("default"), &zone("uploads")).await.unwrap(),
        updated
    );
}

#[tokio::test]
async fn lifecycle_is_a_full_replace_and_is_range_checked() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    zone_in(&client, "default", "uploads").await;
    let (n, z) = (ns("default"), zone("uploads"));

    let set = landing::set_lifecycle(&client, &n, &z, Some(14), true).await.unwrap();
    assert_eq!((set.processed_max_age_days, set.auto_purge), (Some(14), true));
    let read = landing::get(&client, &n, &z).await.unwrap().zone;
    assert_eq!((read.processed_max_age_days, read.auto_purge), (Some(14), true));

    // None clears the age; it does not keep it.
    let cleared = landing::set_lifecycle(&client, &n, &z, None, false).await.unwrap();
    assert_eq!((cleared.processed_max_age_days, cleared.auto_purge), (None, false));

    for days in [0, -3] {
        let err = landing::set_lifecycle(&client, &n, &z, Some(days), true)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_landing_zones_processed_max_age_days"),
            "{err:?}"
        );
    }
    let read = landing::get(&client, &n, &z).await.unwrap().zone;
    assert_eq!((read.processed_max_age_days, read.auto_purge), (None, false));
}

#[tokio::test]
async fn duplicate_zone_is_a_conflict_and_unknown_namespace_a_missing_reference() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    zone_in(&client, "default", "uploads").await;
    let err = landing::create(&client, &new_zone("default", "uploads"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_landing_zones_namespace_name"),
        "{err:?}"
    );
    // The same name in another namespace is another zone.
    zone_in(&client, "sales", "uploads").await;

    let err = landing::create(&client, &new_zone("nowhere", "uploads"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "namespace", constraint } if constraint == "fk_landing_zones_namespace"),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_zones_are_not_found() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    zone_in(&client, "sales", "uploads").await;
    // The zone exists, but in another namespace.
    let (n, z) = (ns("default"), zone("uploads"));
    for err in [
        landing::get(&client, &n, &z).await.unwrap_err(),
        landing::update(&client, &n, &z, &Default::default()).await.unwrap_err(),
        landing::set_lifecycle(&client, &n, &z, Some(3), true)
            .await
            .unwrap_err(),
        landing::delete(&client, &n, &z).await.unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "landing zone" }), "{err:?}");
    }
}

#[tokio::test]
async fn file_round_trips_every_column() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let z = zone_in(&client, "default", "uploads").await;
    let at = datetime!(2026-03-04 05:06:07.123456 UTC);
    let inserted = landing::insert_file(&client, &new_file(z.id, "20260304_050607_orders.csv", 1234), at)
        .await
        .unwrap();
    assert_eq!(inserted.zone_id, z.id);
    assert_eq!(inserted.filename, "20260304_050607_orders.csv");
    assert_eq!(inserted.s3_path, "default/landing/uploads/20260304_050607_orders.csv");
    assert_eq!(inserted.size_bytes, 1234);
    assert_eq!(inserted.content_type, "text/csv");
    assert_eq!(inserted.uploaded_by.as_deref(), Some("bob"));
    assert_eq!(inserted.uploaded_at, at);
    assert_eq!(landing::get_file(&client, z.id, inserted.id).await.unwrap(), inserted);

    let anonymous = landing::NewLandingFile {
        uploaded_by: None,
        content_type: String::new(),
        ..new_file(z.id, "x.bin", 0)
    };
    let inserted = landing::insert_file(&client, &anonymous, at).await.unwrap();
    assert_eq!(inserted.uploaded_by, None);
    assert_eq!(inserted.content_type, "");
    assert_eq!(inserted.size_bytes, 0);
}

#[tokio::test]
async fn file_constraints_map_to_their_errors() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let z = zone_in(&client, "default", "uploads").await;
    let now = OffsetDateTime::now_utc();
    let err = landing::insert_file(&client, &new_file(z.id, "neg.csv", -1), now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_landing_files_size_bytes"),
        "{err:?}"
    );
    let err = landing::insert_file(&client, &new_file(Uuid::new_v4().into(), "a.csv", 1), now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "landing zone", constraint } if constraint == "fk_landing_files_zone"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_file_of_another_zone_is_not_found() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let mine = zone_in(&client, "default", "mine").await;
    let theirs = zone_in(&client, "default", "theirs").await;
    let file = landing::insert_file(&client, &new_file(theirs.id, "a.csv", 5), OffsetDateTime::now_utc())
        .await
        .unwrap();
    for err in [
        landing::get_file(&client, mine.id, file.id).await.unwrap_err(),
        landing::delete_file(&client, mine.id, file.id).await.unwrap_err(),
        landing::get_file(&client, theirs.id, Uuid::new_v4()).await.unwrap_err(),
        landing::delete_file(&client, theirs.id, Uuid::new_v4())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "landing file" }), "{err:?}");
    }
    // The refused delete left the file in place.
    assert_eq!(landing::get_file(&client, theirs.id, file.id).await.unwrap(), file);
}

#[tokio::test]
async fn delete_file_returns_the_deleted_row() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let z = zone_in(&client, "default", "uploads").await;
    let file = landing::insert_file(&client, &new_file(z.id, "a.csv", 5), OffsetDateTime::now_utc())
        .await
        .unwrap();
    let deleted = landing::delete_file(&client, z.id, file.id).await.unwrap();
    assert_eq!(deleted, file);
    assert!(matches!(
        landing::get_file(&client, z.id, file.id).await.unwrap_err(),
        DaoError::NotFound { entity: "landing file" }
    ));
    assert!(matches!(
        landing::delete_file(&client, z.id, file.id).await.unwrap_err(),
        DaoError::NotFound { entity: "landing file" }
    ));
}

#[tokio::test]
async fn list_files_is_newest_first_with_total() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let z = zone_in(&client, "default", "uploads").await;
    let other = zone_in(&client, "default", "other").await;
    let base = datetime!(2026-01-01 00:00:00 UTC);
    for (i, name) in ["first.csv", "second.csv", "third.csv"].iter().enumerate() {
        landing::insert_file(&client, &new_file(z.id, name, 1), base + Duration::hours(i as i64))
            .await
            .unwrap();
    }
    landing::insert_file(&client, &new_file(other.id, "elsewhere.csv", 1), base)
        .await
        .unwrap();

    let all = landing::list_files(&client, z.id, PageRequest::default(), None)
        .await
        .unwrap();
    let names: Vec<&str> = all.items.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["third.csv", "second.csv", "first.csv"]);
    assert_eq!(all.total, 3);

    let page = landing::list_files(&client, z.id, PageRequest::new(Some(2), Some(1)).unwrap(), None)
        .await
        .unwrap();
    let names: Vec<&str> = page.items.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["second.csv", "first.csv"]);
    assert_eq!(page.total, 3);
    let page = landing::list_files(&client, z.id, PageRequest::new(Some(1), Some(0)).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.total, 3, "total counts the whole zone, not the page");

    let empty = landing::list_files(&client, Uuid::new_v4().into(), PageRequest::default(), None)
        .await
        .unwrap();
    assert!(empty.items.is_empty());
    assert_eq!(empty.total, 0);
}

#[tokio::test]
async fn list_counts_files_and_bytes_per_zone_and_filters_by_namespace() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let now = OffsetDateTime::now_utc();
    let b = zone_in(&client, "default", "b-zone").await;
    let a = zone_in(&client, "default", "a-zone").await;
    let s = zone_in(&client, "sales", "orders").await;
    zone_in(&client, "analytics", "empty").await;
    for (zone_id, size) in [(a.id, 100), (a.id, 23), (b.id, 7), (s.id, 1 << 40), (s.id, 1 << 40)] {
        landing::insert_file(&client, &new_file(zone_id, "f.csv", size), now)
            .await
            .unwrap();
    }

    let all = landing::list(&client, None, None, PageRequest::default())
        .await
        .unwrap();
    let rows: Vec<(&str, &str, i64, i64)> = all
        .items
        .iter()
        .map(|z| {
            (
                z.zone.namespace.as_str(),
                z.zone.name.as_str(),
                z.file_count,
                z.total_bytes,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("analytics", "empty", 0, 0),
            ("default", "a-zone", 2, 123),
            ("default", "b-zone", 1, 7),
            ("sales", "orders", 2, 2 << 40),
        ]
    );
    assert_eq!(all.total, 4);

    let default = landing::list(&client, Some(&ns("default")), None, PageRequest::default())
        .await
        .unwrap();
    let names: Vec<&str> = default.items.iter().map(|z| z.zone.name.as_str()).collect();
    assert_eq!(names, ["a-zone", "b-zone"]);
    assert_eq!(default.total, 2);

    let page = landing::list(&client, None, None, PageRequest::new(Some(2), Some(1)).unwrap())
        .await
        .unwrap();
    let names: Vec<&str> = page.items.iter().map(|z| z.zone.name.as_str()).collect();
    assert_eq!(names, ["a-zone", "b-zone"]);
    assert_eq!(page.total, 4);

    let got = landing::get(&client, &ns("default"), &zone("a-zone")).await.unwrap();
    assert_eq!((got.file_count, got.total_bytes), (2, 123));
}

#[tokio::test]
async fn files_older_than_is_bounded_oldest_first_and_per_zone() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let z = zone_in(&client, "default", "uploads").await;
    let other = zone_in(&client, "default", "other").await;
    let base = datetime!(2026-01-01 00:00:00 UTC);
    let mut ids = Vec::new();
    for day in 0..4 {
        let f = landing::insert_file(&client, &new_file(z.id, "f.csv", 1), base + Duration::days(day))
            .await
            .unwrap();
        ids.push(f.id);
    }
    landing::insert_file(&client, &new_file(other.id, "old.csv", 1), base - Duration::days(30))
        .await
        .unwrap();

    let cutoff = base + Duration::days(3);
    let found = landing::files_older_than(&client, z.id, cutoff, 10).await.unwrap();
    assert_eq!(found.iter().map(|f| f.id).collect::<Vec<_>>(), ids[..3]);
    let found = landing::files_older_than(&client, z.id, cutoff, 2).await.unwrap();
    assert_eq!(found.iter().map(|f| f.id).collect::<Vec<_>>(), ids[..2]);
    // The cutoff is exclusive.
    let found = landing::files_older_than(&client, z.id, base, 10).await.unwrap();
    assert!(found.is_empty());
}

#[tokio::test]
async fn deleting_a_zone_deletes_its_files_only() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let z = zone_in(&client, "default", "uploads").await;
    let keep = zone_in(&client, "default", "keep").await;
    let now = OffsetDateTime::now_utc();
    let gone = landing::insert_file(&client, &new_file(z.id, "a.csv", 1), now)
        .await
        .unwrap();
    let kept = landing::insert_file(&client, &new_file(keep.id, "b.csv", 1), now)
        .await
        .unwrap();

    landing::delete(&client, &ns("default"), &zone("uploads"))
        .await
        .unwrap();
    assert!(matches!(
        landing::get(&client, &ns("default"), &zone("uploads"))
            .await
            .unwrap_err(),
        DaoError::NotFound { entity: "landing zone" }
    ));
    let left: i64 = client
        .query_one("SELECT count(*) FROM landing_files WHERE id = $1", &[&gone.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(landing::get_file(&client, keep.id, kept.id).await.unwrap(), kept);
}

#[tokio::test]
async fn deleting_the_namespace_deletes_its_zones_and_files() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let z = zone_in(&client, "sales", "uploads").await;
    let keep = zone_in(&client, "default", "uploads").await;
    let now = OffsetDateTime::now_utc();
    landing::insert_file(&client, &new_file(z.id, "a.csv", 1), now)
        .await
        .unwrap();
    landing::insert_file(&client, &new_file(keep.id, "b.csv", 1), now)
        .await
        .unwrap();

    namespaces::delete(&client, &ns("sales")).await.unwrap();
    let zones: i64 = client
        .query_one("SELECT count(*) FROM landing_zones WHERE namespace = 'sales'", &[])
        .await
        .unwrap()
        .get(0);
    let files: i64 = client
        .query_one("SELECT count(*) FROM landing_files WHERE zone_id = $1", &[&z.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!((zones, files), (0, 0));
    let kept = landing::get(&client, &ns("default"), &zone("uploads")).await.unwrap();
    assert_eq!((kept.file_count, kept.total_bytes), (1, 1));
}

#[tokio::test]
async fn update_lifecycle_keeps_absent_settings_and_clears_only_on_request() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    zone_in(&client, "default", "uploads").await;
    let (n, z) = (ns("default"), zone("uploads"));

    let set = landing::update_lifecycle(&client, &n, &z, Some(Some(14)), Some(true))
        .await
        .unwrap();
    assert_eq!((set.processed_max_age_days, set.auto_purge), (Some(14), true));

    // Nothing given: nothing changes.
    let kept = landing::update_lifecycle(&client, &n, &z, None, None).await.unwrap();
    assert_eq!((kept.processed_max_age_days, kept.auto_purge), (Some(14), true));

    // Only auto_purge: the age stays.
    let purge_off = landing::update_lifecycle(&client, &n, &z, None, Some(false))
        .await
        .unwrap();
    assert_eq!(
        (purge_off.processed_max_age_days, purge_off.auto_purge),
        (Some(14), false)
    );

    // Some(None) clears the age; auto_purge stays.
    let cleared = landing::update_lifecycle(&client, &n, &z, Some(None), None)
        .await
        .unwrap();
    assert_eq!((cleared.processed_max_age_days, cleared.auto_purge), (None, false));
    let read = landing::get(&client, &n, &z).await.unwrap().zone;
    assert_eq!(read, cleared);

    let err = landing::update_lifecycle(&client, &n, &z, Some(Some(0)), Some(true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_landing_zones_processed_max_age_days"),
        "{err:?}"
    );
    let read = landing::get(&client, &n, &z).await.unwrap().zone;
    assert_eq!(
        (read.processed_max_age_days, read.auto_purge),
        (None, false),
        "a refused update changes nothing"
    );

    let err = landing::update_lifecycle(&client, &n, &zone("ghost"), None, Some(true))
        .await
        .unwrap_err();
    assert!(matches!(err, DaoError::NotFound { entity: "landing zone" }), "{err:?}");
}
