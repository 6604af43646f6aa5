//! Pipeline search (issue 19, V24, V27): `?search=` matches a case-insensitive
//! substring of the name or description, escapes `%`, `_` and `\`, and on a
//! seeded table its total is read off the trigram indexes, never by a scan
//! of every pipeline (`EXPLAIN`).

use rat_dao::pipelines::{self, PipelineFilter};
use rat_domain::PageRequest;
use rat_testkit::{TestDatabase, fixtures};

/// 20,000 live pipelines named `{shape}_{entity}_{n}` (as the seed names
/// them), one soft-deleted "orders" pipeline, and two whose descriptions
/// hold LIKE's wildcards.
async fn seeded(client: &impl rat_dao::GenericClient) {
    fixtures::namespace(client, "ns").await;
    client
        .execute(
            "INSERT INTO pipelines (namespace, layer, name, s3_path, description) \
             SELECT 'ns', 'silver', \
                    (ARRAY['raw','clean','daily','hourly'])[1 + i % 4] || '_' || \
                    (ARRAY['orders','customers','payments','invoices','sessions','events','products', \
                           'inventory','shipments','refunds'])[1 + (i / 4) % 10] || '_' || i, \
                    'ns/pipelines/silver/p' || i || '/', 'Seeded ' || i \
             FROM generate_series(1, 20000) AS i",
            &[],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO pipelines (namespace, layer, name, s3_path, description) VALUES \
               ('ns', 'gold', 'promo_a', 'ns/pipelines/gold/promo_a/', '50% OFF_sale'), \
               ('ns', 'gold', 'promo_b', 'ns/pipelines/gold/promo_b/', '50 percent off sale'), \
               ('ns', 'gold', 'old_orders', 'ns/pipelines/gold/old_orders/', ''); \
             UPDATE pipelines SET deleted_at = now() WHERE name = 'old_orders'; \
             ANALYZE pipelines",
        )
        .await
        .unwrap();
}

fn searching(term: &str) -> PipelineFilter {
    PipelineFilter {
        search: Some(term.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn search_totals_are_read_off_the_trigram_indexes() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    seeded(&client).await;

    // The migration installed pg_trgm (the tests migrate as a superuser)
    // and built both indexes.
    let indexes: Vec<String> = client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename = 'pipelines' AND indexdef LIKE '%gin_trgm_ops%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        indexes,
        ["idx_pipelines_description_trgm", "idx_pipelines_name_trgm"],
        "V24's trigram indexes"
    );

    // A search for one pipeline's name, as a user looks one up: (a scan
    // stays the planner's choice for a term a tenth of the table matches).
    let pattern = "%raw\\_orders\\_40%";
    let sql = pipelines::count_statement(&searching("raw_orders_40"));
    let plan = fixtures::explain(&client, &sql, &[&pattern]).await;
    assert!(!plan.contains("Seq Scan on pipelines"), "{plan}");
    assert!(plan.contains("idx_pipelines_name_trgm"), "{plan}");
    assert!(plan.contains("idx_pipelines_description_trgm"), "{plan}");

    // The generic plan Postgres settles on for a prepared count of a broad
    // term lower-cases the pattern once per execution, not once per
    // candidate it rechecks (V27's folded columns are already lower case).
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE search_count (text) AS {}",
            pipelines::count_statement(&searching("orders"))
        ))
        .await
        .unwrap();
    let generic = fixtures::explain(&client, "EXECUTE search_count('%orders%')", &[]).await;
    assert!(generic.contains("idx_pipelines_description_trgm"), "{generic}");
    assert!(!generic.contains("lower($1)"), "{generic}");
    client
        .batch_execute("DEALLOCATE search_count; RESET plan_cache_mode")
        .await
        .unwrap();
}

#[tokio::test]
async fn search_matches_a_substring_of_name_or_description_whatever_the_plan() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    seeded(&client).await;
    let page = PageRequest { limit: 10, offset: 0 };
    let search = |term: &'static str| {
        let client = &client;
        async move {
            pipelines::list(client, &searching(term), pipelines::DEFAULT_SORT, page)
                .await
                .unwrap()
        }
    };

    // A tenth of the live pipelines, never the deleted one; case ignored.
    let orders = search("ORDERS").await;
    assert_eq!(orders.total, 2000);
    assert!(orders.items.iter().all(|p| p.address.name.as_str().contains("orders")));
    // Short terms (no whole trigram) and exact names.
    assert_eq!(search("_1").await.total, 11111, "numbers starting with 1");
    assert_eq!(search("raw_orders_40").await.total, 5, "40, 400, 4000, 4040, 4080");
    // Wildcards are literal characters.
    let percent = search("0% off").await;
    assert_eq!(percent.total, 1);
    assert_eq!(percent.items[0].address.name.as_str(), "promo_a");
    assert_eq!(search("off_sale").await.total, 1);
    assert_eq!(search("no such pipeline").await.total, 0);
    // The lower-cased copies searched (V27) follow every change of the
    // name or description.
    client
        .batch_execute(
            "UPDATE pipelines SET name = 'promo_renamed', description = 'Summer SALE' WHERE name = 'promo_a'",
        )
        .await
        .unwrap();
    assert_eq!(search("0% off").await.total, 0);
    assert_eq!(
        search("PROMO_RENAMED").await.items[0].address.name.as_str(),
        "promo_renamed"
    );
    assert_eq!(search("summer sale").await.total, 1);
    // The same answers as ILIKE on the columns themselves, beyond ASCII
    // too (with whatever case mapping the database's locale has).
    client
        .batch_execute("UPDATE pipelines SET description = 'Été Straße' WHERE name = 'promo_renamed'")
        .await
        .unwrap();
    for term in ["éTÉ", "ÉTÉ", "STRASSE", "straße", "ORDERS_4", "Renamed", "0% off", "_1"] {
        let pattern = format!(
            "%{}%",
            term.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
        );
        let ilike: i64 = client
            .query_one(
                "SELECT count(*) FROM pipelines WHERE deleted_at IS NULL AND (name ILIKE $1 OR description ILIKE $1)",
                &[&pattern],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(search(term).await.total, ilike, "{term}");
    }
}
