//! A realistic volume of metadata, for benchmarks and the dev platform
//! (`cargo xtask db seed`, `cargo xtask dev`).
//!
//! Rows are generated in Rust (so every value passes the domain's rules:
//! names, cron expressions, trigger configs, pinned snapshots) and written in
//! batches of `UNNEST`ed arrays, one round trip per batch. The generator is
//! seeded, so two runs produce the same data set.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rat_domain::{CronExpr, PipelineRef, PublishedVersions, ScheduleTimezone, TriggerConfig, ZoneName, trigger_label};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

/// Rows per INSERT statement.
const BATCH: usize = 5_000;

/// How many rows of each kind.
pub struct Scale {
    /// Namespaces besides `default`.
    pub namespaces: usize,
    /// Pipelines (90% published).
    pub pipelines: usize,
    /// Runs over the last 90 days.
    pub runs: usize,
    /// Cron schedules.
    pub schedules: usize,
    /// Triggers of every type.
    pub triggers: usize,
    /// Audit entries over the last 400 days.
    pub audit: usize,
    /// Version history per published pipeline.
    pub versions_per_pipeline: usize,
    /// Quality results of the most recent runs.
    pub quality_results: usize,
    /// Landing zones.
    pub zones: usize,
    /// Landing files.
    pub files: usize,
    /// Runs are spread over this many days before now.
    pub run_days: i64,
    /// Audit entries are spread over this many days before now.
    pub audit_days: i64,
}

impl Scale {
    /// The benchmark volume: 5 namespaces, 500 pipelines, 100,000 runs,
    /// 1,000 schedules, 200 triggers, 100,000 audit rows.
    pub fn full() -> Scale {
        Scale {
            namespaces: 5,
            pipelines: 500,
            runs: 100_000,
            schedules: 1_000,
            triggers: 200,
            audit: 100_000,
            versions_per_pipeline: 3,
            quality_results: 20_000,
            zones: 10,
            files: 1_000,
            run_days: 90,
            audit_days: 400,
        }
    }

    /// A small set, recent enough that a reaper pass with the default
    /// retention keeps every run and audit entry (runs and audit entries of
    /// the last 3 days). `cargo xtask dev` seeds its pipelines through the
    /// service instead ([`crate::demo`]).
    pub fn small() -> Scale {
        Scale {
            namespaces: 2,
            pipelines: 12,
            runs: 300,
            schedules: 8,
            triggers: 6,
            audit: 200,
            versions_per_pipeline: 2,
            quality_results: 100,
            zones: 2,
            files: 20,
            run_days: 3,
            audit_days: 3,
        }
    }

    /// Rows written in all.
    pub fn total_rows(&self) -> u64 {
        let published = self.pipelines * 9 / 10;
        (self.namespaces
            + self.pipelines
            + published * self.versions_per_pipeline
            + self.runs
            + self.schedules
            + self.triggers
            + self.audit
            + self.pipelines
            + self.quality_results
            + self.zones
            + self.files) as u64
    }
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to the database")?;
    tokio::spawn(connection);
    Ok(client)
}

/// True when the database holds no pipeline (live or deleted).
pub async fn is_empty(url: &str) -> anyhow::Result<bool> {
    let client = connect(url).await?;
    let row = client
        .query_one("SELECT NOT EXISTS (SELECT 1 FROM pipelines)", &[])
        .await?;
    Ok(row.get(0))
}

const NAMESPACES: &[&str] = &[
    "ecommerce",
    "finance",
    "marketing",
    "logistics",
    "support",
    "analytics",
    "hr",
];
const ENTITIES: &[&str] = &[
    "orders",
    "customers",
    "payments",
    "invoices",
    "sessions",
    "events",
    "products",
    "inventory",
    "shipments",
    "refunds",
    "tickets",
    "campaigns",
    "clicks",
    "accounts",
    "suppliers",
];
const SHAPES: &[&str] = &[
    "raw", "clean", "daily", "hourly", "summary", "enriched", "dedup", "snapshot",
];
const CRONS: &[&str] = &[
    "0 * * * *",
    "*/15 * * * *",
    "0 2 * * *",
    "30 6 * * 1-5",
    "0 0 1 * *",
    "*/5 * * * *",
];
const ACTORS: &[&str] = &["admin", "alice", "bob", "carol", "dave", "ci-bot"];
const ACTIONS: &[(&str, &str, &str)] = &[
    ("pipeline.create", "POST", "pipeline"),
    ("pipeline.update", "PUT", "pipeline"),
    ("pipeline.publish", "POST", "pipeline"),
    ("run.create", "POST", "run"),
    ("run.cancel", "POST", "run"),
    ("file.write", "PUT", "pipeline"),
    ("schedule.update", "PUT", "schedule"),
    ("trigger.create", "POST", "trigger"),
    ("namespace.create", "POST", "namespace"),
];

/// A pipeline the rest of the seed refers to.
pub(crate) struct SeededPipeline {
    pub(crate) id: Uuid,
    pub(crate) address: PipelineRef,
    /// Pinned snapshot of each published version, version 1 first; empty
    /// when the pipeline was never published.
    pub(crate) history: Vec<PublishedVersions>,
    pub(crate) created_at: OffsetDateTime,
}

fn version_id(rng: &mut StdRng) -> String {
    // Shaped like the ids S3-compatible servers hand out.
    Uuid::from_u128(rng.random()).to_string()
}

/// Seeds `scale` rows into the database at `url`, with a progress bar.
pub async fn seed(url: &str, scale: &Scale, append: bool) -> anyhow::Result<()> {
    let client = connect(url).await?;
    let mut rng = StdRng::seed_from_u64(if append { rand::random() } else { 0x5eed });
    let now = OffsetDateTime::now_utc();
    let progress = ProgressBar::new(scale.total_rows());
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} rows {msg}")
            .expect("valid template"),
    );
    // Unique suffix so --append never collides with earlier seeds.
    let suffix = if append {
        format!("_{:04x}", rng.random::<u16>())
    } else {
        String::new()
    };

    // Namespaces.
    progress.set_message("namespaces");
    let namespaces: Vec<String> = NAMESPACES
        .iter()
        .take(scale.namespaces)
        .map(|n| (*n).to_owned())
        .collect();
    client
        .execute(
            "INSERT INTO namespaces (name, description) SELECT n, 'Seeded ' || n FROM unnest($1::text[]) n \
             ON CONFLICT (name) DO NOTHING",
            &[&namespaces],
        )
        .await?;
    progress.inc(namespaces.len() as u64);

    // Pipelines, 90% published, with their version history.
    progress.set_message("pipelines");
    let mut pipelines = Vec::with_capacity(scale.pipelines);
    for i in 0..scale.pipelines {
        let ns = &namespaces[i % namespaces.len()];
        let layer = ["bronze", "silver", "gold"][i % 3];
        let name = format!(
            "{}_{}_{i:04}{suffix}",
            SHAPES.choose(&mut rng).expect("non-empty"),
            ENTITIES.choose(&mut rng).expect("non-empty")
        );
        let address = PipelineRef::parse(ns, layer, &name)?;
        let created_at = now - Duration::days(rng.random_range(30..400));
        let versions = (i % 10 != 9).then(|| {
            let prefix = address.s3_prefix();
            let mut files = vec![
                (format!("{prefix}pipeline.sql"), version_id(&mut rng)),
                (format!("{prefix}config.yaml"), version_id(&mut rng)),
            ];
            if rng.random_bool(0.5) {
                files.push((format!("{prefix}tests/quality/not_null.sql"), version_id(&mut rng)));
            }
            PublishedVersions::from_pairs(files).expect("generated pins are valid")
        });
        pipelines.push(SeededPipeline {
            id: Uuid::new_v4(),
            address,
            history: versions
                .map(|pins| vec![pins; scale.versions_per_pipeline])
                .unwrap_or_default(),
            created_at,
        });
    }
    for chunk in pipelines.chunks(BATCH) {
        let ids: Vec<Uuid> = chunk.iter().map(|p| p.id).collect();
        let ns: Vec<&str> = chunk.iter().map(|p| p.address.namespace.as_str()).collect();
        let layers: Vec<&str> = chunk.iter().map(|p| p.address.layer.as_str()).collect();
        let names: Vec<&str> = chunk.iter().map(|p| p.address.name.as_str()).collect();
        let paths: Vec<String> = chunk.iter().map(|p| p.address.s3_prefix().to_string()).collect();
        let descriptions: Vec<String> = chunk
            .iter()
            .map(|p| format!("Builds {} from upstream data", p.address.name))
            .collect();
        let published_at: Vec<Option<OffsetDateTime>> = chunk
            .iter()
            .map(|p| (!p.history.is_empty()).then(|| p.created_at + Duration::days(1)))
            .collect();
        let pins: Vec<serde_json::Value> = chunk
            .iter()
            .map(|p| p.history.last().cloned().unwrap_or_default().to_json())
            .collect();
        let dirty: Vec<bool> = chunk.iter().map(|_| rng.random_bool(0.2)).collect();
        let created: Vec<OffsetDateTime> = chunk.iter().map(|p| p.created_at).collect();
        client
            .execute(
                "INSERT INTO pipelines (id, namespace, layer, name, type, s3_path, description, published_at, \
                                        published_versions, draft_dirty, created_at, updated_at) \
                 SELECT id, ns, layer, name, 'sql', path, descr, pub_at, pins, dirty, created, created \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                             $7::timestamptz[], $8::jsonb[], $9::bool[], $10::timestamptz[]) \
                      AS t(id, ns, layer, name, path, descr, pub_at, pins, dirty, created)",
                &[
                    &ids,
                    &ns,
                    &layers,
                    &names,
                    &paths,
                    &descriptions,
                    &published_at,
                    &pins,
                    &dirty,
                    &created,
                ],
            )
            .await
            .context("inserting pipelines")?;
        progress.inc(chunk.len() as u64);
    }

    progress.set_message("pipeline versions");
    let mut version_rows: Vec<(Uuid, i32, String, serde_json::Value, OffsetDateTime)> = Vec::new();
    for p in &pipelines {
        for (i, pins) in p.history.iter().enumerate() {
            let v = i + 1;
            version_rows.push((
                p.id,
                v as i32,
                format!("Version {v}"),
                pins.to_json(),
                p.created_at + Duration::hours(v as i64),
            ));
        }
    }
    for chunk in version_rows.chunks(BATCH) {
        let ids: Vec<Uuid> = chunk.iter().map(|r| r.0).collect();
        let numbers: Vec<i32> = chunk.iter().map(|r| r.1).collect();
        let messages: Vec<&str> = chunk.iter().map(|r| r.2.as_str()).collect();
        let pins: Vec<&serde_json::Value> = chunk.iter().map(|r| &r.3).collect();
        let created: Vec<OffsetDateTime> = chunk.iter().map(|r| r.4).collect();
        client
            .execute(
                "INSERT INTO pipeline_versions (pipeline_id, version_number, message, published_versions, created_at) \
                 SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::jsonb[], $5::timestamptz[])",
                &[&ids, &numbers, &messages, &pins, &created],
            )
            .await
            .context("inserting pipeline versions")?;
        progress.inc(chunk.len() as u64);
    }

    let zones: Vec<(String, String)> = (0..scale.zones)
        .map(|i| {
            (
                namespaces[i % namespaces.len()].clone(),
                format!("{}_uploads{suffix}", ENTITIES[i % ENTITIES.len()]),
            )
        })
        .collect();
    fill(&client, &mut rng, scale, now, &pipelines, &zones, &progress, None).await
}

/// Everything but namespaces and pipelines: runs of the published pipelines
/// (pinning their versions' snapshots), schedules, the landing `zones`
/// (namespace, name) and their files,
/// triggers, quality tests (`tests`: each pipeline's test, when they exist
/// already; else one `not_null` row per pipeline is inserted) with results
/// of the most recent runs, and the audit trail.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fill(
    client: &Client,
    rng: &mut StdRng,
    scale: &Scale,
    now: OffsetDateTime,
    pipelines: &[SeededPipeline],
    zones: &[(String, String)],
    progress: &ProgressBar,
    tests: Option<std::collections::HashMap<Uuid, Uuid>>,
) -> anyhow::Result<()> {
    let published: Vec<&SeededPipeline> = pipelines.iter().filter(|p| !p.history.is_empty()).collect();
    if published.is_empty() {
        bail!("scale too small: no published pipeline to run");
    }

    // Runs over the last `run_days` days; the last few are still pending or running.
    progress.set_message("runs");
    let mut run_ids: Vec<(Uuid, Uuid)> = Vec::with_capacity(scale.runs);
    let mut remaining = scale.runs;
    let mut index = 0usize;
    while remaining > 0 {
        let n = remaining.min(BATCH);
        let mut ids = Vec::with_capacity(n);
        let mut pipeline_ids = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut triggers = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut started = Vec::with_capacity(n);
        let mut finished = Vec::with_capacity(n);
        let mut durations: Vec<Option<i32>> = Vec::with_capacity(n);
        let mut rows: Vec<Option<i64>> = Vec::with_capacity(n);
        let mut errors: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut pins = Vec::with_capacity(n);
        let mut logs: Vec<Option<serde_json::Value>> = Vec::with_capacity(n);
        for _ in 0..n {
            let pipeline = published[rng.random_range(0..published.len())];
            // Spread evenly over 90 days, oldest first.
            let age_s = (scale.run_days * 86_400) as f64 * (1.0 - index as f64 / scale.runs as f64);
            let created_at = now - Duration::seconds_f64(age_s);
            let recent = age_s < 3_600.0;
            let status = match rng.random_range(0..100) {
                _ if recent && rng.random_bool(0.5) => ["pending", "running"][rng.random_range(0..2)],
                0..85 => "success",
                85..96 => "failed",
                _ => "cancelled",
            };
            let start = (status != "pending").then(|| created_at + Duration::milliseconds(rng.random_range(50..5_000)));
            let duration_ms = rng.random_range(800..600_000);
            let terminal = matches!(status, "success" | "failed" | "cancelled");
            ids.push(Uuid::new_v4());
            pipeline_ids.push(pipeline.id);
            statuses.push(status);
            triggers.push(match rng.random_range(0..10) {
                0..6 => trigger_label::schedule(CRONS.choose(rng).expect("non-empty")),
                6..9 => trigger_label::MANUAL.to_owned(),
                _ => trigger_label::pipeline_success(&published.choose(rng).expect("non-empty").address),
            });
            created.push(created_at);
            started.push(start);
            finished.push(
                start
                    .filter(|_| terminal)
                    .map(|s| s + Duration::milliseconds(duration_ms)),
            );
            durations.push(terminal.then_some(duration_ms as i32));
            rows.push((status == "success").then(|| rng.random_range(0..2_000_000)));
            errors.push((status == "failed").then_some("duckdb: column \"order_id\" not found"));
            let version = rng.random_range(1..=pipeline.history.len());
            versions.push(version as i32);
            pins.push(pipeline.history[version - 1].to_json());
            logs.push(rng.random_bool(0.1).then(|| {
                json!([
                    {"timestamp": created_at, "level": "info", "message": "run started"},
                    {"timestamp": created_at, "level": "info", "message": "reading upstream tables"},
                    {"timestamp": created_at, "level": "info", "message": "merge complete"}
                ])
            }));
            run_ids.push((ids[ids.len() - 1], pipeline.id));
            index += 1;
        }
        client
            .execute(
                "INSERT INTO runs (id, pipeline_id, status, trigger, created_at, started_at, finished_at, duration_ms, \
                                   rows_written, error, version_number, published_versions, logs) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], \
                                      $6::timestamptz[], $7::timestamptz[], $8::int[], $9::bigint[], $10::text[], \
                                      $11::int[], $12::jsonb[], $13::jsonb[])",
                &[
                    &ids,
                    &pipeline_ids,
                    &statuses,
                    &triggers,
                    &created,
                    &started,
                    &finished,
                    &durations,
                    &rows,
                    &errors,
                    &versions,
                    &pins,
                    &logs,
                ],
            )
            .await
            .context("inserting runs")?;
        progress.inc(n as u64);
        remaining -= n;
    }

    // Schedules: spread over the published pipelines, next slot computed.
    progress.set_message("schedules");
    {
        let mut pipeline_ids = Vec::new();
        let mut crons = Vec::new();
        let mut enabled = Vec::new();
        let mut next = Vec::new();
        for i in 0..scale.schedules {
            let pipeline = published[i % published.len()];
            let cron = CronExpr::parse(CRONS.choose(rng).expect("non-empty"))?;
            pipeline_ids.push(pipeline.id);
            next.push(cron.next_after(now, &ScheduleTimezone::UTC));
            crons.push(cron.as_str().to_owned());
            enabled.push(rng.random_bool(0.9));
        }
        for start in (0..scale.schedules).step_by(BATCH) {
            let end = (start + BATCH).min(scale.schedules);
            client
                .execute(
                    "INSERT INTO schedules (pipeline_id, cron_expr, enabled, next_run_at) \
                     SELECT * FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::timestamptz[])",
                    &[
                        &&pipeline_ids[start..end],
                        &&crons[start..end],
                        &&enabled[start..end],
                        &&next[start..end],
                    ],
                )
                .await
                .context("inserting schedules")?;
            progress.inc((end - start) as u64);
        }
    }

    // Landing zones and their files.
    progress.set_message("landing zones");
    let zone_names = zones;
    let mut zones: Vec<(Uuid, String, ZoneName)> = Vec::new();
    for (i, (ns, zone)) in zone_names.iter().enumerate() {
        let ns = ns.clone();
        let zone = ZoneName::parse(zone)?;
        let id: Uuid = client
            .query_one(
                "INSERT INTO landing_zones (namespace, name, description, auto_purge, processed_max_age_days) \
                 VALUES ($1, $2, 'Seeded uploads', $3, $4) ON CONFLICT (namespace, name) DO UPDATE SET name = EXCLUDED.name \
                 RETURNING id",
                &[&ns, &zone.as_str(), &(i % 2 == 0), &(i % 2 == 0).then_some(30_i32)],
            )
            .await
            .context("inserting landing zones")?
            .get(0);
        zones.push((id, ns, zone));
        progress.inc(1);
    }
    if !zones.is_empty() {
        let mut zone_ids = Vec::new();
        let mut filenames = Vec::new();
        let mut paths = Vec::new();
        let mut sizes = Vec::new();
        let mut uploaded = Vec::new();
        for i in 0..scale.files {
            let (id, ns, zone) = &zones[i % zones.len()];
            // Uploads of the last 60 days at most (of the run span when shorter,
            // so a small set's auto-purged zones keep their files).
            let at = now - Duration::minutes(rng.random_range(0..scale.run_days.min(60) * 24 * 60));
            let name = format!("{}_{}.csv", at.unix_timestamp(), i);
            paths.push(format!("{ns}/landing/{zone}/{name}"));
            filenames.push(name);
            zone_ids.push(*id);
            sizes.push(rng.random_range(1_000_i64..50_000_000));
            uploaded.push(at);
        }
        client
            .execute(
                "INSERT INTO landing_files (zone_id, filename, s3_path, size_bytes, content_type, uploaded_at) \
                 SELECT z, f, p, s, 'text/csv', u \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[]) AS t(z, f, p, s, u)",
                &[&zone_ids, &filenames, &paths, &sizes, &uploaded],
            )
            .await
            .context("inserting landing files")?;
        progress.inc(scale.files as u64);
    }

    // Triggers of every type, mostly pipeline_success.
    progress.set_message("triggers");
    {
        let mut pipeline_ids = Vec::new();
        let mut types = Vec::new();
        let mut configs = Vec::new();
        for i in 0..scale.triggers {
            let pipeline = published[rng.random_range(0..published.len())];
            let config = match i % 20 {
                0..12 => TriggerConfig::PipelineSuccess {
                    upstream: published.choose(rng).expect("non-empty").address.clone(),
                },
                12..15 if !zones.is_empty() => {
                    let (_, ns, zone) = &zones[i % zones.len()];
                    TriggerConfig::LandingZoneUpload {
                        namespace: rat_domain::NamespaceName::parse(ns)?,
                        zone_name: zone.clone(),
                    }
                }
                15..17 if !zones.is_empty() => {
                    let (_, ns, zone) = &zones[i % zones.len()];
                    TriggerConfig::FilePattern {
                        namespace: rat_domain::NamespaceName::parse(ns)?,
                        zone_name: zone.clone(),
                        pattern: "*.csv".to_owned(),
                    }
                }
                17..19 => TriggerConfig::Webhook {
                    token_hash: format!("{:032x}{:032x}", rng.random::<u128>(), rng.random::<u128>()),
                },
                _ => TriggerConfig::Cron {
                    cron_expr: CronExpr::parse(CRONS.choose(rng).expect("non-empty"))?,
                },
            };
            pipeline_ids.push(pipeline.id);
            types.push(config.trigger_type().as_str());
            configs.push(config.to_json());
        }
        client
            .execute(
                "INSERT INTO pipeline_triggers (pipeline_id, type, config, cooldown_seconds) \
                 SELECT p, t, c, 60 FROM unnest($1::uuid[], $2::text[], $3::jsonb[]) AS x(p, t, c)",
                &[&pipeline_ids, &types, &configs],
            )
            .await
            .context("inserting triggers")?;
        progress.inc(scale.triggers as u64);
    }

    // Quality tests (one per pipeline) and results attached to recent runs.
    progress.set_message("quality");
    let mut test_ids = Vec::new();
    let inserted = if tests.is_some() { &[][..] } else { pipelines };
    for chunk in inserted.chunks(BATCH) {
        let ids: Vec<Uuid> = chunk.iter().map(|p| p.id).collect();
        let paths: Vec<String> = chunk
            .iter()
            .map(|p| format!("{}tests/quality/not_null.sql", p.address.s3_prefix()))
            .collect();
        let severities: Vec<&str> = chunk
            .iter()
            .map(|_| if rng.random_bool(0.8) { "error" } else { "warn" })
            .collect();
        let rows = client
            .query(
                "INSERT INTO quality_tests (pipeline_id, name, severity, s3_path, description) \
                 SELECT p, 'not_null', s, k, 'Key columns are never null' \
                 FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(p, s, k) RETURNING id, pipeline_id",
                &[&ids, &severities, &paths],
            )
            .await
            .context("inserting quality tests")?;
        test_ids.extend(rows.iter().map(|r| (r.get::<_, Uuid>(1), r.get::<_, Uuid>(0))));
        progress.inc(chunk.len() as u64);
    }
    let test_of: std::collections::HashMap<Uuid, Uuid> = match tests {
        Some(tests) => tests,
        None => test_ids.into_iter().collect(),
    };
    let recent_runs = &run_ids[run_ids.len().saturating_sub(scale.quality_results)..];
    for chunk in recent_runs.chunks(BATCH) {
        let tests: Vec<Uuid> = chunk.iter().map(|(_, p)| test_of[p]).collect();
        let runs: Vec<Uuid> = chunk.iter().map(|(r, _)| *r).collect();
        let statuses: Vec<&str> = chunk
            .iter()
            .map(|_| match rng.random_range(0..100) {
                0..90 => "passed",
                90..96 => "failed",
                96..99 => "warned",
                _ => "error",
            })
            .collect();
        client
            .execute(
                "INSERT INTO quality_results (test_id, run_id, status, value, expected, duration_ms, ran_at) \
                 SELECT t, r, s, CASE WHEN s = 'passed' THEN 0 ELSE 3 END, 0, 120, \
                        (SELECT COALESCE(finished_at, created_at) FROM runs WHERE id = r) \
                 FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS x(t, r, s)",
                &[&tests, &runs, &statuses],
            )
            .await
            .context("inserting quality results")?;
        progress.inc(chunk.len() as u64);
    }

    // Audit trail over `audit_days` (the full scale: some of it past the
    // default 365-day retention).
    progress.set_message("audit log");
    let mut remaining = scale.audit;
    while remaining > 0 {
        let n = remaining.min(BATCH);
        let mut actors = Vec::with_capacity(n);
        let mut actions = Vec::with_capacity(n);
        let mut object_types = Vec::with_capacity(n);
        let mut object_ids = Vec::with_capacity(n);
        let mut details = Vec::with_capacity(n);
        let mut stamps = Vec::with_capacity(n);
        for _ in 0..n {
            let (action, method, object_type) = *ACTIONS.choose(rng).expect("non-empty");
            let pipeline = pipelines.choose(rng).expect("non-empty");
            let status = if rng.random_bool(0.95) { 200 } else { 409 };
            actors.push(*ACTORS.choose(rng).expect("non-empty"));
            actions.push(action);
            object_types.push(object_type);
            object_ids.push((object_type == "pipeline").then_some(pipeline.id));
            details.push(json!({
                "method": method,
                "path": format!("/api/v1/pipelines/{}", pipeline.address),
                "status": status,
                "request_id": Uuid::from_u128(rng.random()).to_string(),
                "client_ip": format!("10.0.{}.{}", rng.random_range(0..4), rng.random_range(1..255)),
            }));
            stamps.push(now - Duration::minutes(rng.random_range(0..scale.audit_days * 24 * 60)));
        }
        client
            .execute(
                "INSERT INTO audit_log (actor, action, object_type, object_id, details, timestamp) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::jsonb[], $6::timestamptz[])",
                &[&actors, &actions, &object_types, &object_ids, &details, &stamps],
            )
            .await
            .context("inserting audit rows")?;
        progress.inc(n as u64);
        remaining -= n;
    }

    progress.set_message("analyze");
    client.batch_execute("ANALYZE").await?;
    progress.finish_with_message("done");
    Ok(())
}
