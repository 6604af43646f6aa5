//! Schedules through the service layer with an injected clock: `next_run_at`
//! is the first slot after `now` in the schedule's zone on every create and
//! update, and NULL while disabled.

use crate::common::{address, create, fs_world};
use rat_domain::{CronExpr, ScheduleTimezone};
use rat_service::ServiceError;
use rat_service::identity::Caller;
use rat_service::schedules::{ScheduleChanges, ScheduleSpec};
use time::OffsetDateTime;
use time::macros::datetime;

fn spec(cron: &str, zone: &str, enabled: bool) -> ScheduleSpec {
    ScheduleSpec {
        address: address("default", "silver", "orders"),
        cron: CronExpr::parse(cron).unwrap(),
        timezone: ScheduleTimezone::parse(zone).unwrap(),
        enabled,
    }
}

#[tokio::test]
async fn create_computes_the_first_slot_in_the_schedule_zone() {
    let world = fs_world().await;
    create(&world.services, "orders").await;
    let now = datetime!(2026-01-15 10:03:10 UTC);
    let every_five = rat_service::schedules::create(
        &world.services,
        &Caller::community(),
        &spec("*/5 * * * *", "UTC", true),
        now,
    )
    .await
    .unwrap();
    assert_eq!(every_five.next_run_at, Some(datetime!(2026-01-15 10:05:00 UTC)));
    assert!(every_five.enabled);
    let paris = rat_service::schedules::create(
        &world.services,
        &Caller::community(),
        &spec("0 9 * * *", "Europe/Paris", true),
        now,
    )
    .await
    .unwrap();
    // 09:00 in Paris has passed at 11:03 local: the next is tomorrow, 08:00 UTC.
    assert_eq!(paris.next_run_at, Some(datetime!(2026-01-16 08:00:00 UTC)));
    assert_eq!(paris.timezone.name(), "Europe/Paris");
    let off = rat_service::schedules::create(
        &world.services,
        &Caller::community(),
        &spec("0 9 * * *", "UTC", false),
        now,
    )
    .await
    .unwrap();
    assert_eq!(off.next_run_at, None);

    let mut ghost = spec("* * * * *", "UTC", true);
    ghost.address = address("default", "silver", "ghost");
    let err = rat_service::schedules::create(&world.services, &Caller::community(), &ghost, now)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { entity: "pipeline" }), "{err:?}");
}

#[tokio::test]
async fn every_update_recomputes_from_now() {
    let world = fs_world().await;
    create(&world.services, "orders").await;
    let created_at = datetime!(2026-06-01 10:00:00 UTC);
    let schedule = rat_service::schedules::create(
        &world.services,
        &Caller::community(),
        &spec("*/5 * * * *", "UTC", true),
        created_at,
    )
    .await
    .unwrap();
    let update = async |changes: ScheduleChanges, now: OffsetDateTime| {
        rat_service::schedules::update(&world.services, &Caller::community(), schedule.id, &changes, now)
            .await
            .unwrap()
    };

    let now = datetime!(2026-06-03 12:30:00 UTC);
    let nothing = update(ScheduleChanges::default(), now).await;
    assert_eq!(nothing.next_run_at, Some(datetime!(2026-06-03 12:35:00 UTC)));
    assert_eq!(nothing.cron_expr, schedule.cron_expr);

    let hourly = update(
        ScheduleChanges {
            cron: Some(CronExpr::parse("0 * * * *").unwrap()),
            ..Default::default()
        },
        now,
    )
    .await;
    assert_eq!(hourly.next_run_at, Some(datetime!(2026-06-03 13:00:00 UTC)));

    let disabled = update(
        ScheduleChanges {
            enabled: Some(false),
            ..Default::default()
        },
        now,
    )
    .await;
    assert_eq!((disabled.enabled, disabled.next_run_at), (false, None));

    // Enabled a week later: the next slot is after that moment, no old slot.
    let week_later = datetime!(2026-06-10 08:15:00 UTC);
    let enabled = update(
        ScheduleChanges {
            enabled: Some(true),
            ..Default::default()
        },
        week_later,
    )
    .await;
    assert_eq!(enabled.next_run_at, Some(datetime!(2026-06-10 09:00:00 UTC)));

    // A zone change alone moves the slot: 09:00 in Tokyo is 00:00 UTC.
    let tokyo = update(
        ScheduleChanges {
            cron: Some(CronExpr::parse("0 9 * * *").unwrap()),
            timezone: Some(ScheduleTimezone::parse("Asia/Tokyo").unwrap()),
            ..Default::default()
        },
        week_later,
    )
    .await;
    assert_eq!(tokyo.next_run_at, Some(datetime!(2026-06-11 00:00:00 UTC)));
    let utc = update(
        ScheduleChanges {
            timezone: Some(ScheduleTimezone::UTC),
            ..Default::default()
        },
        week_later,
    )
    .await;
    assert_eq!(utc.next_run_at, Some(datetime!(2026-06-10 09:00:00 UTC)));
    assert_eq!(utc.cron_expr.as_str(), "0 9 * * *", "absent fields are kept");

    let err = rat_service::schedules::update(
        &world.services,
        &Caller::community(),
        uuid::Uuid::new_v4().into(),
        &Default::default(),
        now,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { entity: "schedule" }), "{err:?}");
}
