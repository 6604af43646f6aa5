//! The demo data set of `cargo xtask dev` (and `cargo xtask db seed --small`):
//! pipelines made the way a user makes them, through `rat-service` against
//! the store the platform uses — created, their files written (a
//! `pipeline.sql` reading its upstream tables, bronze → silver → gold, a
//! `config.yaml` and a quality test with annotation comments), published —
//! so every pinned version exists in the store and a run of any of them
//! finds its files. The rest (runs pinning those versions, schedules,
//! triggers, landing zones, quality results, the audit trail) is written by
//! [`crate::seed`]'s generator, all of it within the last few days, so the
//! reaper's first pass with the default retention keeps every run and audit
//! entry.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rat_dao::PoolSettings;
use rat_domain::{PipelineRef, PipelineType, Severity, TestName};
use rat_service::Services;
use rat_service::identity::Caller;
use rat_service::pipelines::NewPipeline;
use rat_service::quality::NewTest;
use rat_versioning::VersionedStore;
use time::OffsetDateTime;
use tokio_postgres::NoTls;

use crate::seed::{Scale, SeededPipeline, fill};

/// One demo pipeline: where it sits, what it reads, and how it is checked.
struct DemoPipeline {
    namespace: &'static str,
    layer: &'static str,
    name: &'static str,
    description: &'static str,
    /// The body of the SELECT (after the header comments).
    select: &'static str,
    /// Key column, checked by the quality test.
    key: &'static str,
    /// Publishes made (0: a draft never published).
    publishes: usize,
}

/// The columns of each demo pipeline's table (by pipeline name), described
/// in its table metadata: the explorer's schema tab and the SQL editor's
/// autocomplete list them (the metadata plane knows no column types).
const DEMO_COLUMNS: &[(&str, &[(&str, &str)])] = &[
    (
        "raw_orders",
        &[
            ("order_id", "Order number from the shop"),
            ("customer_id", "Who ordered"),
            ("product_id", "What was ordered"),
            ("quantity", "Units ordered"),
            ("amount", "Order total, in EUR"),
            ("ordered_at", "When the order was placed (UTC)"),
        ],
    ),
    (
        "raw_customers",
        &[
            ("customer_id", "Customer number"),
            ("email", "Email as entered"),
            ("country", "Country as entered"),
            ("signed_up_at", "Sign-up time (UTC)"),
        ],
    ),
    (
        "raw_products",
        &[
            ("product_id", "Product number"),
            ("name", "Product name"),
            ("price", "List price, in EUR"),
        ],
    ),
    (
        "clean_orders",
        &[
            ("order_id", "Order number, one row per order"),
            ("customer_id", "Who ordered"),
            ("ordered_at", "When the order was placed"),
            ("amount", "Order total, in EUR"),
            ("country", "The customer's country"),
        ],
    ),
    (
        "clean_customers",
        &[
            ("customer_id", "Customer number"),
            ("email", "Lower-cased, trimmed email"),
            ("country", "ISO country code, upper case"),
            ("signed_up_at", "Sign-up time"),
        ],
    ),
    (
        "daily_revenue",
        &[
            ("day", "Order day"),
            ("country", "The customers' country"),
            ("orders", "Orders that day"),
            ("revenue", "Sum of order totals, in EUR"),
        ],
    ),
    (
        "customer_lifetime_value",
        &[
            ("customer_id", "Customer number"),
            ("signed_up_at", "Sign-up time"),
            ("orders", "Orders placed so far"),
            ("lifetime_value", "Sum of all order totals, in EUR"),
        ],
    ),
    (
        "raw_payments",
        &[
            ("payment_id", "Payment reference"),
            ("invoice_id", "Invoice paid"),
            ("amount", "Amount paid, in EUR (negative: refund)"),
            ("status", "settled, pending or refunded"),
            ("settled_at", "Settlement time"),
        ],
    ),
    (
        "raw_invoices",
        &[
            ("invoice_id", "Invoice number"),
            ("order_id", "Order invoiced"),
            ("issued_at", "Issue date"),
        ],
    ),
    (
        "clean_payments",
        &[
            ("payment_id", "Payment reference"),
            ("invoice_id", "Invoice paid"),
            ("order_id", "Order paid"),
            ("amount", "Amount paid, in EUR"),
            ("settled_at", "Settlement time"),
        ],
    ),
    (
        "monthly_receivables",
        &[
            ("month", "Month"),
            ("invoiced", "Invoiced, in EUR"),
            ("settled", "Settled, in EUR"),
            ("outstanding", "Invoiced but not settled, in EUR"),
        ],
    ),
    (
        "refund_rate",
        &[("week", "Week"), ("refund_rate", "Share of payments refunded")],
    ),
];

/// Namespaces of the demo set.
pub const DEMO_NAMESPACES: &[&str] = &["ecommerce", "finance"];
/// Landing zones of the demo set (namespace, zone), read by the bronze pipelines.
const DEMO_ZONES: &[(&str, &str)] = &[("ecommerce", "orders_uploads"), ("finance", "payments_uploads")];

const PIPELINES: &[DemoPipeline] = &[
    DemoPipeline {
        namespace: "ecommerce",
        layer: "bronze",
        name: "raw_orders",
        description: "Orders as uploaded to the orders landing zone",
        select: "SELECT *\nFROM read_csv_auto('{{ landing_zone('orders_uploads') }}/orders_*.csv')\n",
        key: "order_id",
        publishes: 2,
    },
    DemoPipeline {
        namespace: "ecommerce",
        layer: "bronze",
        name: "raw_customers",
        description: "Customers exported nightly from the CRM",
        select: "SELECT *\nFROM read_csv_auto('{{ landing_zone('orders_uploads') }}/customers_*.csv')\n",
        key: "customer_id",
        publishes: 1,
    },
    DemoPipeline {
        namespace: "ecommerce",
        layer: "bronze",
        name: "raw_products",
        description: "The product catalogue",
        select: "SELECT *\nFROM read_csv_auto('{{ landing_zone('orders_uploads') }}/products_*.csv')\n",
        key: "product_id",
        publishes: 1,
    },
    DemoPipeline {
        namespace: "ecommerce",
        layer: "silver",
        name: "clean_orders",
        description: "Orders deduplicated, typed, with their customer",
        select: "SELECT DISTINCT ON (o.order_id)\n    CAST(o.order_id AS BIGINT) AS order_id,\n    CAST(o.customer_id AS BIGINT) AS customer_id,\n    CAST(o.ordered_at AS TIMESTAMP) AS ordered_at,\n    CAST(o.amount AS DECIMAL(12, 2)) AS amount,\n    c.country\nFROM {{ ref('ecommerce.bronze.raw_orders') }} AS o\nLEFT JOIN {{ ref('ecommerce.bronze.raw_customers') }} AS c USING (customer_id)\nWHERE o.order_id IS NOT NULL\nORDER BY o.order_id, o.ordered_at DESC\n",
        key: "order_id",
        publishes: 2,
    },
    DemoPipeline {
        namespace: "ecommerce",
        layer: "silver",
        name: "clean_customers",
        description: "Customers with normalised e-mail and country",
        select: "SELECT\n    CAST(customer_id AS BIGINT) AS customer_id,\n    lower(trim(email)) AS email,\n    upper(country) AS country,\n    CAST(signed_up_at AS TIMESTAMP) AS signed_up_at\nFROM {{ ref('ecommerce.bronze.raw_customers') }}\nWHERE customer_id IS NOT NULL\n",
        key: "customer_id",
        publishes: 1,
    },
    DemoPipeline {
        namespace: "ecommerce",
        layer: "gold",
        name: "daily_revenue",
        description: "Revenue and order count per day and country",
        select: "SELECT\n    CAST(ordered_at AS DATE) AS day,\n    country,\n    count(*) AS orders,\n    sum(amount) AS revenue\nFROM {{ ref('ecommerce.silver.clean_orders') }}\nGROUP BY 1, 2\n",
        key: "day",
        publishes: 2,
    },
    DemoPipeline {
        namespace: "ecommerce",
        layer: "gold",
        name: "customer_lifetime_value",
        description: "Orders and spend per customer since sign-up",
        select: "SELECT\n    c.customer_id,\n    c.signed_up_at,\n    count(o.order_id) AS orders,\n    coalesce(sum(o.amount), 0) AS lifetime_value\nFROM {{ ref('ecommerce.silver.clean_customers') }} AS c\nLEFT JOIN {{ ref('ecommerce.silver.clean_orders') }} AS o USING (customer_id)\nGROUP BY 1, 2\n",
        key: "customer_id",
        publishes: 1,
    },
    DemoPipeline {
        namespace: "finance",
        layer: "bronze",
        name: "raw_payments",
        description: "Payments as reported by the payment provider",
        select: "SELECT *\nFROM read_json_auto('{{ landing_zone('payments_uploads') }}/*.json')\n",
        key: "payment_id",
        publishes: 2,
    },
    DemoPipeline {
        namespace: "finance",
        layer: "bronze",
        name: "raw_invoices",
        description: "Invoices from the billing system",
        select: "SELECT *\nFROM read_csv_auto('{{ landing_zone('payments_uploads') }}/invoices_*.csv')\n",
        key: "invoice_id",
        publishes: 1,
    },
    DemoPipeline {
        namespace: "finance",
        layer: "silver",
        name: "clean_payments",
        description: "Settled payments matched to their invoice and order",
        select: "SELECT\n    p.payment_id,\n    p.invoice_id,\n    i.order_id,\n    CAST(p.amount AS DECIMAL(12, 2)) AS amount,\n    CAST(p.settled_at AS TIMESTAMP) AS settled_at\nFROM {{ ref('finance.bronze.raw_payments') }} AS p\nJOIN {{ ref('finance.bronze.raw_invoices') }} AS i USING (invoice_id)\nWHERE p.status = 'settled'\n",
        key: "payment_id",
        publishes: 1,
    },
    DemoPipeline {
        namespace: "finance",
        layer: "gold",
        name: "monthly_receivables",
        description: "Invoiced against settled, per month",
        select: "SELECT\n    date_trunc('month', o.ordered_at) AS month,\n    sum(o.amount) AS invoiced,\n    sum(p.amount) AS settled,\n    sum(o.amount) - coalesce(sum(p.amount), 0) AS outstanding\nFROM {{ ref('ecommerce.silver.clean_orders') }} AS o\nLEFT JOIN {{ ref('finance.silver.clean_payments') }} AS p USING (order_id)\nGROUP BY 1\n",
        key: "month",
        publishes: 1,
    },
    DemoPipeline {
        namespace: "finance",
        layer: "gold",
        name: "refund_rate",
        description: "Share of payments refunded per week (a draft, never published)",
        select: "SELECT\n    date_trunc('week', settled_at) AS week,\n    avg(CASE WHEN amount < 0 THEN 1 ELSE 0 END) AS refund_rate\nFROM {{ ref('finance.silver.clean_payments') }}\nGROUP BY 1\n",
        key: "week",
        publishes: 0,
    },
];

/// The scale of what [`seed_demo`] writes beside its pipelines.
pub fn demo_scale() -> Scale {
    Scale {
        namespaces: DEMO_NAMESPACES.len(),
        pipelines: PIPELINES.len(),
        zones: DEMO_ZONES.len(),
        ..Scale::small()
    }
}

/// Demo pipelines, by address, and how many versions each publishes.
pub fn demo_pipelines() -> Vec<(PipelineRef, usize)> {
    PIPELINES
        .iter()
        .map(|p| {
            (
                PipelineRef::parse(p.namespace, p.layer, p.name).expect("valid demo address"),
                p.publishes,
            )
        })
        .collect()
}

fn pipeline_sql(p: &DemoPipeline, address: &PipelineRef, revision: usize) -> String {
    let strategy = if p.layer == "gold" {
        "full_refresh"
    } else {
        "incremental"
    };
    let mut sql = format!(
        "-- @merge_strategy: {strategy}\n-- @unique_key: {key}\n-- {address}: {description}\n",
        key = p.key,
        description = p.description
    );
    if revision > 1 {
        sql.push_str(&format!("-- Revision {revision}: filters out test rows.\n"));
    }
    sql.push('\n');
    sql.push_str(p.select);
    sql
}

fn config_yaml(p: &DemoPipeline) -> String {
    let strategy = if p.layer == "gold" {
        "full_refresh"
    } else {
        "incremental"
    };
    format!(
        "# Configuration of {ns}.{layer}.{name}\n\
         description: \"{description}\"\n\
         materialization: table\n\
         merge_strategy: {strategy}\n\
         unique_key:\n  - {key}\n",
        ns = p.namespace,
        layer = p.layer,
        name = p.name,
        description = p.description,
        key = p.key
    )
}

fn quality_sql(p: &DemoPipeline) -> (String, Severity, String) {
    let severity = if p.layer == "bronze" {
        Severity::Warn
    } else {
        Severity::Error
    };
    let description = format!("{} is never null", p.key);
    let sql = format!(
        "-- @severity: {severity}\n\
         -- @description: {description}\n\
         -- @tags: completeness, {layer}\n\
         -- @remediation: Find the rows without {key} upstream and fix or drop them at the source.\n\
         SELECT count(*) AS violations\n\
         FROM {{{{ ref('{ns}.{layer}.{name}') }}}}\n\
         WHERE {key} IS NULL\n",
        severity = if severity == Severity::Warn { "warn" } else { "error" },
        layer = p.layer,
        key = p.key,
        ns = p.namespace,
        name = p.name,
    );
    (sql, severity, description)
}

/// Seeds the demo set into the (migrated) database at `url`, writing the
/// pipelines' files to `store`. With `append`, a second set is added with
/// unique names (and namespaces reused).
pub async fn seed_demo(url: &str, store: Arc<dyn VersionedStore>, append: bool) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to the database")?;
    tokio::spawn(connection);
    let mut settings = PoolSettings::new(url);
    settings.max_size = 2;
    settings.application_name = "rat-demo-seed".to_owned();
    let pool = rat_dao::create_pool(&settings).context("creating the pool")?;
    let services = Services::new(pool, store.clone());
    let caller = Caller::community();
    let scale = demo_scale();
    let mut rng = StdRng::seed_from_u64(if append { rand::random() } else { 0xde30 });
    let suffix = if append {
        format!("_{:04x}", rng.random::<u16>())
    } else {
        String::new()
    };
    let progress = ProgressBar::new(scale.total_rows());

    let namespaces: Vec<String> = DEMO_NAMESPACES.iter().map(|n| (*n).to_owned()).collect();
    client
        .execute(
            "INSERT INTO namespaces (name, description) SELECT n, 'Demo ' || n FROM unnest($1::text[]) n \
             ON CONFLICT (name) DO NOTHING",
            &[&namespaces],
        )
        .await
        .context("inserting namespaces")?;

    let mut pipelines = Vec::with_capacity(PIPELINES.len());
    let mut tests = HashMap::new();
    for p in PIPELINES {
        let name = format!("{}{suffix}", p.name);
        let address = PipelineRef::parse(p.namespace, p.layer, &name)?;
        let created = rat_service::pipelines::create_pipeline(
            &services,
            &caller,
            NewPipeline {
                address: address.clone(),
                pipeline_type: PipelineType::Sql,
                description: p.description.to_owned(),
                owner: None,
                max_versions: None,
            },
        )
        .await
        .with_context(|| format!("creating {address}"))?;
        let prefix = created.pipeline.s3_path.clone();
        let write = |file: &str, body: String| {
            let services = &services;
            let caller = &caller;
            let key = format!("{prefix}{file}");
            async move {
                rat_service::files::write_file(services, caller, &key, body.into_bytes())
                    .await
                    .with_context(|| format!("writing {key}"))
            }
        };
        write("pipeline.sql", pipeline_sql(p, &address, 1)).await?;
        write("config.yaml", config_yaml(p)).await?;
        let (sql, severity, description) = quality_sql(p);
        let test = rat_service::quality::create_test(
            &services,
            &caller,
            &address,
            NewTest {
                name: TestName::parse(&format!("not_null_{}", p.key))?,
                sql,
                severity,
                description,
            },
        )
        .await
        .with_context(|| format!("creating the quality test of {address}"))?;
        tests.insert(created.pipeline.id.as_uuid(), test.id.as_uuid());
        if let Some((_, columns)) = DEMO_COLUMNS.iter().find(|(n, _)| *n == p.name) {
            let changes = rat_service::tables::MetadataChanges {
                description: Some(p.description.to_owned()),
                owner: None,
                column_descriptions: Some(
                    columns
                        .iter()
                        .map(|(c, d)| ((*c).to_owned(), (*d).to_owned()))
                        .collect(),
                ),
            };
            let table = rat_domain::TableName::parse(&name)?;
            rat_service::tables::put_metadata(&services, &caller, &address.namespace, address.layer, &table, &changes)
                .await
                .with_context(|| format!("describing the table of {address}"))?;
        }

        let mut history = Vec::new();
        for revision in 1..=p.publishes {
            if revision > 1 {
                write("pipeline.sql", pipeline_sql(p, &address, revision)).await?;
            }
            let message = if revision == 1 {
                "First version".to_owned()
            } else {
                format!("Revision {revision}")
            };
            let published =
                rat_service::versions::publish(&services, &caller, &address, &message, OffsetDateTime::now_utc())
                    .await
                    .with_context(|| format!("publishing {address}"))?;
            history.push(published.version.published_versions);
        }
        pipelines.push(SeededPipeline {
            id: created.pipeline.id.as_uuid(),
            address,
            history,
            created_at: created.pipeline.created_at,
        });
        progress.inc(1);
    }

    let now = OffsetDateTime::now_utc();
    let zones: Vec<(String, String)> = DEMO_ZONES
        .iter()
        .map(|(ns, zone)| ((*ns).to_owned(), format!("{zone}{suffix}")))
        .collect();
    fill(
        &client,
        &mut rng,
        &scale,
        now,
        &pipelines,
        &zones,
        &progress,
        Some(tests),
    )
    .await?;
    let ids: Vec<uuid::Uuid> = pipelines.iter().map(|p| p.id).collect();
    settle(&client, store.as_ref(), &mut rng, &ids, &zones).await?;
    progress.finish_and_clear();
    Ok(())
}

/// Makes what [`fill`] wrote look like a platform that ran it: runs left
/// `running` (with no runner holding them, so nothing would ever finish or
/// fail them) go back to `pending`, for the dev runner to run; every
/// finished run without logs gets the lines a runner would have logged; and
/// every landing file gets real CSV content in the store (its size and
/// version recorded), so a download or a run reading the zone finds it.
async fn settle(
    client: &tokio_postgres::Client,
    store: &dyn VersionedStore,
    rng: &mut StdRng,
    pipelines: &[uuid::Uuid],
    zones: &[(String, String)],
) -> anyhow::Result<()> {
    client
        .execute(
            "UPDATE runs SET status = 'pending', started_at = NULL \
             WHERE status = 'running' AND runner_id IS NULL AND pipeline_id = ANY($1)",
            &[&pipelines],
        )
        .await
        .context("re-queueing the seeded running runs")?;
    client
        .execute(
            "INSERT INTO run_logs (run_id, timestamp, level, message) \
             SELECT r.id, l.at, l.level, l.message \
             FROM runs r JOIN pipelines p ON p.id = r.pipeline_id \
             CROSS JOIN LATERAL (VALUES \
                 (r.started_at, 'info', \
                  format('run started on demo-runner: %s.%s.%s version %s', \
                         p.namespace, p.layer, p.name, r.version_number)), \
                 (r.started_at + interval '40 milliseconds', 'info', \
                  format('fetched %s pinned files', \
                         (SELECT count(*) FROM jsonb_object_keys(r.published_versions)))), \
                 (r.started_at + (r.finished_at - r.started_at) / 2, 'info', 'executing pipeline.sql'), \
                 (r.finished_at - interval '5 milliseconds', \
                  CASE r.status WHEN 'success' THEN 'info' WHEN 'failed' THEN 'error' ELSE 'warn' END, \
                  CASE r.status WHEN 'success' THEN format('merge complete: %s rows written', r.rows_written) \
                                WHEN 'failed' THEN coalesce(r.error, 'failed') \
                                ELSE 'cancelled before the merge' END), \
                 (r.finished_at, 'info', format('run %s in %s ms', r.status, r.duration_ms)) \
             ) AS l(at, level, message) \
             WHERE r.pipeline_id = ANY($1) AND r.status IN ('success', 'failed', 'cancelled') \
               AND r.logs IS NULL AND r.started_at IS NOT NULL AND r.finished_at IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM run_logs x WHERE x.run_id = r.id)",
            &[&pipelines],
        )
        .await
        .context("writing the seeded runs' logs")?;
    let zone_names: Vec<String> = zones.iter().map(|(ns, zone)| format!("{ns}/{zone}")).collect();
    let files = client
        .query(
            "SELECT f.id, f.s3_path, z.name FROM landing_files f JOIN landing_zones z ON z.id = f.zone_id \
             WHERE z.namespace || '/' || z.name = ANY($1) AND f.s3_version_id IS NULL",
            &[&zone_names],
        )
        .await
        .context("listing the seeded landing files")?;
    for file in files {
        let (id, path, zone): (uuid::Uuid, String, String) = (file.get(0), file.get(1), file.get(2));
        let body = landing_csv(rng, &zone);
        let key = rat_domain::ObjectKey::parse(&path).with_context(|| format!("landing file key {path}"))?;
        let version = store
            .put(&key, body.clone().into_bytes(), "text/csv")
            .await
            .with_context(|| format!("writing {path}"))?;
        client
            .execute(
                "UPDATE landing_files SET size_bytes = $2, s3_version_id = $3 WHERE id = $1",
                &[&id, &(body.len() as i64), &version.as_str()],
            )
            .await
            .context("recording a landing file's content")?;
    }
    Ok(())
}

/// A small CSV as a partner would drop it into `zone`.
fn landing_csv(rng: &mut StdRng, zone: &str) -> String {
    let rows = rng.random_range(5..40);
    let mut csv = String::new();
    if zone.starts_with("payments") {
        csv.push_str("payment_id,invoice_id,amount,status,settled_at\n");
        for _ in 0..rows {
            let status = ["settled", "settled", "settled", "pending", "refunded"][rng.random_range(0..5)];
            csv.push_str(&format!(
                "P{:06},I{:06},{}.{:02},{status},2026-0{}-{:02}T{:02}:{:02}:00Z\n",
                rng.random_range(0..1_000_000),
                rng.random_range(0..1_000_000),
                rng.random_range(1..2_000),
                rng.random_range(0..100),
                rng.random_range(1..10),
                rng.random_range(1..29),
                rng.random_range(0..24),
                rng.random_range(0..60),
            ));
        }
    } else {
        csv.push_str("order_id,customer_id,product_id,quantity,amount,ordered_at\n");
        for _ in 0..rows {
            csv.push_str(&format!(
                "{},{},{},{},{}.{:02},2026-0{}-{:02}T{:02}:{:02}:00Z\n",
                rng.random_range(100_000..999_999),
                rng.random_range(1_000..9_999),
                rng.random_range(1..500),
                rng.random_range(1..6),
                rng.random_range(5..800),
                rng.random_range(0..100),
                rng.random_range(1..10),
                rng.random_range(1..29),
                rng.random_range(0..24),
                rng.random_range(0..60),
            ));
        }
    }
    csv
}
