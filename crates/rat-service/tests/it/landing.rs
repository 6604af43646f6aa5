//! Landing zone service rules against a real database and file store.

use rat_dao::landing::NewLandingZone;
use rat_domain::{LandingZoneSummary, NamespaceName, PageRequest, ZoneName};
use rat_service::ServiceError;
use rat_service::identity::Caller;
use rat_service::landing::{self, Upload};
use rat_versioning::{KeyPrefix, list_all_latest};
use time::OffsetDateTime;

fn upload(name: &str) -> Upload {
    Upload {
        basename: name.to_owned(),
        original_name: name.to_owned(),
        content_type: "text/csv".to_owned(),
    }
}

/// The content of every test upload, as the stream an upload arrives as.
fn content() -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin {
    futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"id\n1\n"))])
}

/// Creates the zone `default/uploads`.
async fn uploads_zone(world: &crate::common::World) -> (NamespaceName, ZoneName, LandingZoneSummary) {
    let (ns, zone) = (
        NamespaceName::parse("default").unwrap(),
        ZoneName::parse("uploads").unwrap(),
    );
    let new = NewLandingZone {
        namespace: ns.clone(),
        name: zone.clone(),
        description: String::new(),
        owner: None,
        expected_schema: String::new(),
    };
    let created = landing::create_zone(&world.services, &Caller::community(), new)
        .await
        .unwrap();
    (ns, zone, created)
}

#[tokio::test]
async fn an_upload_whose_row_is_refused_leaves_no_object() {
    let world = crate::common::fs_world().await;
    let (ns, zone, _) = uploads_zone(&world).await;
    // An uploader identity longer than its column makes the row insert fail
    // after the object was written.
    let err = landing::upload_file(
        &world.services,
        &Caller {
            admin: true,
            ..Caller::user("x".repeat(300), &[])
        },
        &ns,
        &zone,
        upload("a.csv"),
        &mut content(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::InvalidInput { .. }), "{err:?}");
    let prefix = KeyPrefix::parse("default/landing/uploads/").unwrap();
    let left = list_all_latest(world.services.store.as_ref(), &prefix).await.unwrap();
    assert!(left.is_empty(), "the object was removed again: {left:?}");
    let files = landing::list_files(
        &world.services,
        &Caller::community(),
        &ns,
        &zone,
        PageRequest::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(files.total, 0);

    // The same upload with a valid identity goes through.
    let file = landing::upload_file(
        &world.services,
        &Caller {
            admin: true,
            ..Caller::user("alice".to_owned(), &[])
        },
        &ns,
        &zone,
        upload("a.csv"),
        &mut content(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(
        list_all_latest(world.services.store.as_ref(), &prefix)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(file.uploaded_by.as_deref(), Some("alice"));
}

#[tokio::test]
async fn an_upload_to_a_zone_deleted_meanwhile_leaves_no_object() {
    let world = crate::common::fs_world().await;
    let (ns, zone, created) = uploads_zone(&world).await;
    // Hold the zone's deletion open: the upload's row waits on the foreign
    // key, then fails once the deletion commits.
    let mut client = world.db.client().await;
    let transaction = client.transaction().await.unwrap();
    transaction
        .execute("DELETE FROM landing_zones WHERE id = $1", &[&created.zone.id])
        .await
        .unwrap();
    let services = world.services.clone();
    let (ns2, zone2) = (ns.clone(), zone.clone());
    let racing = tokio::spawn(async move {
        landing::upload_file(
            &services,
            &Caller::community(),
            &ns2,
            &zone2,
            upload("late.csv"),
            &mut content(),
            OffsetDateTime::now_utc(),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !racing.is_finished(),
        "the row insert waits for the deleting transaction"
    );
    transaction.commit().await.unwrap();
    let err = racing.await.unwrap().unwrap_err();
    assert!(
        matches!(err, ServiceError::NotFound { entity: "landing zone" }),
        "{err:?}"
    );
    let prefix = KeyPrefix::parse("default/landing/uploads/").unwrap();
    assert!(
        list_all_latest(world.services.store.as_ref(), &prefix)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn two_uploads_of_one_name_at_the_same_instant_keep_their_own_content() {
    let world = crate::common::fs_world().await;
    let (ns, zone, _) = uploads_zone(&world).await;
    let at = OffsetDateTime::now_utc();
    let mut files = Vec::new();
    for content in [&b"first"[..], b"second"] {
        let mut body = futures_util::stream::iter([Ok(bytes::Bytes::copy_from_slice(content))]);
        let file = landing::upload_file(
            &world.services,
            &Caller::community(),
            &ns,
            &zone,
            upload("a.csv"),
            &mut body,
            at,
        )
        .await
        .unwrap();
        files.push((file, content));
    }
    assert_ne!(
        files[0].0.s3_path, files[1].0.s3_path,
        "one key per upload, even in one second"
    );
    for (file, content) in &files {
        let object = world
            .services
            .store
            .get(&file.s3_path, file.s3_version_id.as_ref())
            .await
            .unwrap();
        assert_eq!(object.body, *content);
        let head = world.services.store.get(&file.s3_path, None).await.unwrap();
        assert_eq!(head.body, *content, "neither replaced the other");
    }
}
