// The portal's flows, driven through RAT's TypeScript SDK
// (@squat-collective/rat-client, built from ../shared/clients/ under
// target/rat-clients/) against a running rat-api, checking each answer has
// the shape the portal relies on (../shared/reference/rat-clients.md).
//
// Our own code, written against the SDK's public API only. Run by the
// end-to-end test tests/tests/it/sdk_flows.rs:
//
//   RAT_SDK=<sdk-typescript>/dist/index.js RAT_API=http://127.0.0.1:8080 node tests/clients/portal-flows.mjs
//
// Prints one line per step; exits 1 at the first failed check (with what
// was received), 0 when every flow answered as the portal expects.

import { pathToFileURL } from "node:url";

const sdkPath = process.env.RAT_SDK;
const apiUrl = process.env.RAT_API;
if (!sdkPath || !apiUrl) {
  console.error("RAT_SDK (the SDK's dist/index.js) and RAT_API (rat-api's origin) must be set");
  process.exit(2);
}
const sdk = await import(pathToFileURL(sdkPath).href);
const { RatClient, NotFoundError, ConflictError, RatError } = sdk;
const rat = new RatClient({ apiUrl, maxRetries: 1, timeout: 30000 });

class CheckFailed extends Error {}

let step = "";
function flow(name) {
  step = name;
  console.log(`== ${name}`);
}

function check(condition, what, got) {
  if (!condition) {
    throw new CheckFailed(`${step}: ${what}\n  got: ${JSON.stringify(got, null, 2)}`);
  }
}

const isString = (v) => typeof v === "string";
const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
const isBool = (v) => typeof v === "boolean";
const isArray = Array.isArray;
const isTime = (v) => isString(v) && !Number.isNaN(Date.parse(v));
const isObject = (v) => v !== null && typeof v === "object" && !isArray(v);

// Checks that `value` is an object whose named fields pass their checks.
function shape(value, fields, what) {
  check(isObject(value), `${what} is an object`, value);
  for (const [field, test] of Object.entries(fields)) {
    check(test(value[field]), `${what}.${field} has the expected type`, value);
  }
}

// Expects `promise` to reject with an instance of `errorClass`.
async function rejects(promise, errorClass, what) {
  try {
    const value = await promise;
    check(false, `${what} fails with ${errorClass.name}`, value);
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    check(e instanceof errorClass, `${what} fails with ${errorClass.name}`, {
      name: e?.name,
      status: e?.statusCode,
      message: String(e?.message),
    });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const NS = `sdk_${Date.now().toString(36)}`;
const LAYER = "silver";
const NAME = "orders_clean";
const DIR = `${NS}/pipelines/${LAYER}/${NAME}/`;

async function main() {
  flow("health and features (the shell's first calls)");
  const health = await rat.health.getHealth();
  check(health.status === "ok", "GET /health says ok", health);
  const features = await rat.health.getFeatures();
  shape(
    features,
    { edition: isString, namespaces: isBool, multi_user: isBool, landing_zones: isBool },
    "features",
  );
  check(features.plugins === undefined || isObject(features.plugins), "features.plugins is a map", features);

  flow("namespaces: list, create");
  const before = await rat.namespaces.list();
  shape(before, { namespaces: isArray, total: isNumber }, "namespace list");
  const created = await rat.namespaces.create(NS);
  shape(created, { name: isString }, "created namespace");
  check(created.name === NS, "the created namespace has its name", created);
  await rejects(rat.namespaces.create(NS), ConflictError, "creating it again");
  const after = await rat.namespaces.list();
  check(after.namespaces.some((n) => n.name === NS), "the list has the new namespace", after);
  for (const n of after.namespaces) shape(n, { name: isString, description: isString, created_at: isTime }, "namespace");
  await rat.namespaces.update(NS, { description: "driven through the SDK" });
  const described = (await rat.namespaces.list()).namespaces.find((n) => n.name === NS);
  check(described?.description === "driven through the SDK", "the namespace's description was updated", described);

  flow("pipelines: create, get, list");
  const pipeline = await rat.pipelines.create({
    namespace: NS,
    layer: LAYER,
    name: NAME,
    type: "sql",
    description: "orders without duplicates",
  });
  shape(pipeline, { namespace: isString, layer: isString, name: isString, s3_path: isString, files_created: isArray }, "created pipeline");
  check(pipeline.s3_path === DIR, "the pipeline lives under its folder", pipeline);
  check(pipeline.files_created.includes("pipeline.sql"), "a pipeline.sql was created", pipeline);
  const got = await rat.pipelines.get(NS, LAYER, NAME);
  shape(
    got,
    {
      id: isString,
      namespace: isString,
      layer: isString,
      name: isString,
      type: isString,
      s3_path: isString,
      description: isString,
      draft_dirty: isBool,
      max_versions: isNumber,
      created_at: isTime,
      updated_at: isTime,
    },
    "pipeline",
  );
  check(got.description === "orders without duplicates", "the description is kept", got);
  const listed = await rat.pipelines.list({ namespace: NS });
  shape(listed, { pipelines: isArray, total: isNumber }, "pipeline list");
  check(listed.total === 1 && listed.pipelines[0].name === NAME, "the namespace lists its one pipeline", listed);
  await rejects(rat.pipelines.get(NS, LAYER, "nothing_here"), NotFoundError, "getting a missing pipeline");
  const updated = await rat.pipelines.update(NS, LAYER, NAME, { description: "orders, deduplicated" });
  check(updated.description === "orders, deduplicated", "PUT answers the updated pipeline", updated);

  flow("code tab: list, read, write the pipeline's files");
  const files = await rat.storage.list(DIR);
  check(isArray(files.files), "the file list has files", files);
  for (const f of files.files) shape(f, { path: isString, size: isNumber, modified: isTime, type: isString }, "file");
  const sqlPath = `${DIR}pipeline.sql`;
  check(files.files.some((f) => f.path === sqlPath), "pipeline.sql is listed", files);
  const starter = await rat.storage.read(sqlPath);
  shape(starter, { path: isString, content: isString, size: isNumber, modified: isTime }, "file content");
  const v1 = "SELECT DISTINCT order_id, amount FROM {{ ref('bronze.orders') }}\n";
  const written = await rat.storage.write(sqlPath, v1);
  check(written.path === sqlPath && isString(written.status), "PUT answers the path and a status", written);
  const read = await rat.storage.read(sqlPath);
  check(read.content === v1, "the file reads back as written", read);
  check(read.size === new TextEncoder().encode(v1).length, "its size is its length in bytes", read);
  await rejects(rat.storage.read(`${DIR}missing.sql`), NotFoundError, "reading a missing file");

  flow("publish, versions, rollback");
  const published = await rat.pipelines.publish(NS, LAYER, NAME, "first version");
  shape(published, { status: isString, version: isNumber, message: isString, versions: isObject }, "publish answer");
  check(published.version === 1 && sqlPath in published.versions, "version 1 pins pipeline.sql", published);
  const v2 = "SELECT DISTINCT order_id, amount, currency FROM {{ ref('bronze.orders') }}\n";
  await rat.storage.write(sqlPath, v2);
  check((await rat.pipelines.get(NS, LAYER, NAME)).draft_dirty === true, "a write after publishing leaves the draft dirty", null);
  const second = await rat.pipelines.publish(NS, LAYER, NAME, "with the currency");
  check(second.version === 2, "the second publish is version 2", second);
  check(second.versions[sqlPath] !== published.versions[sqlPath], "it pins another version of pipeline.sql", second);
  const versions = await rat.pipelines.listVersions(NS, LAYER, NAME);
  shape(versions, { versions: isArray, total: isNumber }, "version list");
  check(versions.total === 2, "two versions", versions);
  for (const v of versions.versions) {
    shape(v, { id: isString, pipeline_id: isString, version_number: isNumber, message: isString, published_versions: isObject, created_at: isTime }, "version");
  }
  const one = await rat.pipelines.getVersion(NS, LAYER, NAME, 1);
  check(one.message === "first version" && one.published_versions[sqlPath] === published.versions[sqlPath], "version 1 is the first publish", one);
  const rolled = await rat.pipelines.rollback(NS, LAYER, NAME, 1, "back to the first");
  shape(rolled, { status: isString, from_version: isNumber, new_version: isNumber, message: isString }, "rollback answer");
  check(rolled.from_version === 1 && rolled.new_version === 3, "the rollback to 1 is version 3", rolled);
  const three = await rat.pipelines.getVersion(NS, LAYER, NAME, 3);
  check(three.published_versions[sqlPath] === published.versions[sqlPath], "version 3 pins what version 1 pinned", three);
  const afterRollback = await rat.pipelines.get(NS, LAYER, NAME);
  check(afterRollback.published_versions?.[sqlPath] === published.versions[sqlPath], "the pipeline's published pins are version 1's", afterRollback);

  flow("quality tests: create, list, run");
  const testSql = [
    "-- @severity: warn",
    "-- @description: every order has an id",
    "-- @tags: completeness, orders",
    "-- @remediation: fix the source extract",
    "SELECT * FROM {{ this }} WHERE order_id IS NULL",
    "",
  ].join("\n");
  const test = await rat.quality.create(NS, LAYER, NAME, { name: "order_id_present", sql: testSql, severity: "warn", description: "ids" });
  shape(test, { name: isString, severity: isString, path: isString }, "created test");
  check(test.name === "order_id_present" && test.severity === "warn", "the test is created as asked", test);
  const tests = await rat.quality.list(NS, LAYER, NAME);
  shape(tests, { tests: isArray, total: isNumber }, "test list");
  check(tests.total === 1, "one test", tests);
  const t = tests.tests[0];
  shape(t, { name: isString, sql: isString, severity: isString, description: isString, published: isBool, tags: isArray, remediation: isString }, "test");
  check(t.sql === testSql, "the test's SQL reads back", t);
  check(t.description === "every order has an id" && t.remediation === "fix the source extract", "annotations are read", t);
  check(JSON.stringify(t.tags) === JSON.stringify(["completeness", "orders"]), "tags are read", t);
  check(t.published === false, "an unpublished test says so", t);
  const results = await rat.quality.run(NS, LAYER, NAME);
  shape(results, { results: isArray, passed: isNumber, failed: isNumber, total: isNumber }, "test run answer");
  check(results.total === 1, "the run answer covers the one test", results);
  for (const r of results.results) {
    shape(r, { name: isString, severity: isString, status: isString }, "test result");
    check(["passed", "failed", "warned", "error"].includes(r.status), "a result's status is one the portal knows", r);
  }
  check(results.passed + results.failed <= results.total, "passed and failed are among the tests", results);

  flow("runs: trigger, status, logs, list");
  const run = await rat.runs.create({ namespace: NS, layer: LAYER, pipeline: NAME, trigger: "manual" });
  shape(run, { run_id: isString, status: isString }, "created run");
  check(run.status === "pending", "a new run is pending", run);
  let status;
  const deadline = Date.now() + 60_000;
  for (;;) {
    status = await rat.runs.get(run.run_id);
    if (["success", "failed", "cancelled"].includes(status.status) || Date.now() > deadline) break;
    await sleep(250);
  }
  shape(status, { id: isString, pipeline_id: isString, status: isString, trigger: isString, created_at: isTime }, "run");
  check(status.id === run.run_id && status.pipeline_id === got.id, "the run is the pipeline's", status);
  check(status.status === "success", "the run succeeds on the dev runner within 60 s", status);
  check(isTime(status.started_at) && isTime(status.finished_at), "a finished run has its times", status);
  check(isNumber(status.duration_ms) && status.duration_ms >= 0, "and its duration", status);
  check(status.error === null || status.error === "" || status.error === undefined, "a successful run has no error", status);
  const logs = await rat.runs.logs(run.run_id);
  shape(logs, { logs: isArray, status: isString }, "run logs");
  check(logs.status === "success", "the logs carry the run's status", logs);
  check(logs.logs.length > 0, "the runner's log lines are there", logs);
  for (const line of logs.logs) shape(line, { timestamp: isTime, level: isString, message: isString }, "log line");
  const runs = await rat.runs.list({ namespace: NS, layer: LAYER, pipeline: NAME });
  shape(runs, { runs: isArray, total: isNumber }, "run list");
  check(runs.total === 1 && runs.runs[0].id === run.run_id, "the pipeline's run is listed", runs);
  const pending = await rat.runs.create({ namespace: NS, layer: LAYER, pipeline: NAME });
  const cancelled = await rat.runs.cancel(pending.run_id).catch((e) => ({ error: e }));
  if ("error" in cancelled) {
    // The runner may have finished it first: then it is no longer cancellable.
    check(cancelled.error instanceof RatError, "a refused cancel is an SDK error", String(cancelled.error));
  } else {
    check(cancelled.run_id === pending.run_id && isString(cancelled.status), "a cancel answers the run and its status", cancelled);
  }
  await rejects(rat.runs.get("00000000-0000-0000-0000-000000000000"), NotFoundError, "getting a missing run");

  flow("retention: system config, status, per pipeline");
  const config = await rat.retention.getConfig();
  const numbers = {
    runs_max_per_pipeline: isNumber,
    runs_max_age_days: isNumber,
    logs_max_age_days: isNumber,
    quality_results_max_per_test: isNumber,
    soft_delete_purge_days: isNumber,
    stuck_run_timeout_minutes: isNumber,
    audit_log_max_age_days: isNumber,
    nessie_orphan_branch_max_age_hours: isNumber,
    reaper_interval_minutes: isNumber,
    iceberg_snapshot_max_age_days: isNumber,
    iceberg_orphan_file_max_age_days: isNumber,
  };
  shape(config.config, numbers, "retention config");
  const wanted = { ...config.config, runs_max_per_pipeline: config.config.runs_max_per_pipeline + 7, logs_max_age_days: 45 };
  const saved = await rat.retention.updateConfig(wanted);
  check(JSON.stringify(saved.config) === JSON.stringify(wanted), "PUT answers the saved config", saved);
  check(JSON.stringify((await rat.retention.getConfig()).config) === JSON.stringify(wanted), "the saved config reads back", null);
  const reaper = await rat.retention.getStatus();
  shape(
    reaper,
    { runs_pruned: isNumber, logs_pruned: isNumber, quality_pruned: isNumber, pipelines_purged: isNumber, runs_failed: isNumber, branches_cleaned: isNumber, lz_files_cleaned: isNumber, audit_pruned: isNumber },
    "reaper status",
  );
  check(reaper.last_run_at === null || isTime(reaper.last_run_at), "last_run_at is a time or null", reaper);
  await rat.retention.updatePipelineRetention(NS, LAYER, NAME, { runs_max_per_pipeline: 5 });
  const perPipeline = await rat.retention.getPipelineRetention(NS, LAYER, NAME);
  shape(perPipeline.system, numbers, "system retention");
  shape(perPipeline.effective, numbers, "effective retention");
  check(perPipeline.overrides?.runs_max_per_pipeline === 5, "the override is kept", perPipeline);
  check(perPipeline.effective.runs_max_per_pipeline === 5, "and is effective", perPipeline);
  check(perPipeline.effective.logs_max_age_days === 45, "the rest comes from the system config", perPipeline);

  flow("landing zones: create, upload, list, get");
  const zone = await rat.landing.create({ namespace: NS, name: "drops", description: "partner drops" });
  const zoneShape = { id: isString, namespace: isString, name: isString, description: isString, file_count: isNumber, total_bytes: isNumber, created_at: isTime, updated_at: isTime };
  shape(zone, zoneShape, "landing zone");
  check(zone.name === "drops" && zone.file_count === 0, "a new zone is empty", zone);
  await rejects(rat.landing.create({ namespace: NS, name: "drops" }), ConflictError, "creating the zone again");
  const csv = "order_id,amount\n1,9.50\n2,12.00\n";
  const uploaded = await rat.landing.uploadFile(NS, "drops", new Blob([csv], { type: "text/csv" }), "orders.csv");
  shape(uploaded, { id: isString, zone_id: isString, filename: isString, s3_path: isString, size_bytes: isNumber, content_type: isString, uploaded_at: isTime }, "landing file");
  check(uploaded.zone_id === zone.id && uploaded.filename.endsWith("orders.csv"), "the file is the zone's", uploaded);
  check(uploaded.size_bytes === csv.length, "its size is the upload's", uploaded);
  const zoneFiles = await rat.landing.listFiles(NS, "drops");
  shape(zoneFiles, { files: isArray, total: isNumber }, "landing file list");
  check(zoneFiles.total === 1 && zoneFiles.files[0].id === uploaded.id, "the zone lists the upload", zoneFiles);
  const one_ = await rat.landing.getFile(NS, "drops", uploaded.id);
  check(one_.id === uploaded.id && one_.s3_path === uploaded.s3_path, "the file reads back", one_);
  const zones = await rat.landing.list({ namespace: NS });
  shape(zones, { zones: isArray, total: isNumber }, "landing zone list");
  const listedZone = zones.zones.find((z) => z.name === "drops");
  shape(listedZone, zoneShape, "listed landing zone");
  check(listedZone.file_count === 1 && listedZone.total_bytes === csv.length, "the zone counts its file and bytes", listedZone);
  const sample = await rat.landing.uploadSample(NS, "drops", new Blob([csv], { type: "text/csv" }), "sample.csv");
  check(isString(sample.path) && sample.size === csv.length, "a sample is uploaded", sample);
  const samples = await rat.landing.listSamples(NS, "drops");
  check(samples.files.some((f) => f.path === sample.path), "and listed", samples);

  flow("tables and schema (home page, explorer, SQL editor)");
  const tables = await rat.tables.list();
  shape(tables, { tables: isArray, total: isNumber }, "table list");
  const table = tables.tables.find((x) => x.namespace === NS && x.layer === LAYER && x.name === NAME);
  shape(table, { namespace: isString, layer: isString, name: isString, row_count: isNumber, size_bytes: isNumber }, "table");
  const filtered = await rat.tables.list({ namespace: NS, layer: LAYER });
  check(filtered.tables.length === 1 && filtered.tables[0].name === NAME, "filters by namespace and layer", filtered);
  const detail = await rat.tables.get(NS, LAYER, NAME);
  shape(detail, { namespace: isString, layer: isString, name: isString, row_count: isNumber, size_bytes: isNumber, columns: isArray }, "table detail");
  const schema = await rat.tables.schema({ namespace: NS });
  check(isArray(schema.tables), "the schema has tables", schema);
  const schemaTable = schema.tables.find((x) => x.name === NAME);
  shape(schemaTable, { namespace: isString, layer: isString, name: isString, columns: isArray }, "schema table");

  flow("runner plugins (plugins settings page)");
  const plugins = await rat.plugins.listRunnerPlugins();
  check(isArray(plugins), "a bare array", plugins);
  for (const p of plugins) shape(p, { name: isString, group: isString, version: isString, package_name: isString }, "runner plugin");

  flow("clean up: delete the test, the zone, the pipeline");
  await rat.quality.delete(NS, LAYER, NAME, "order_id_present");
  check((await rat.quality.list(NS, LAYER, NAME)).total === 0, "the test is gone", null);
  await rat.landing.delete(NS, "drops");
  await rejects(rat.landing.get(NS, "drops"), NotFoundError, "getting the deleted zone");
  await rat.pipelines.delete(NS, LAYER, NAME);
  await rejects(rat.pipelines.get(NS, LAYER, NAME), NotFoundError, "getting the deleted pipeline");

  console.log("every portal flow answered as the portal expects");
}

try {
  await main();
} catch (e) {
  if (e instanceof CheckFailed) {
    console.error(`FAILED ${e.message}`);
  } else {
    console.error(`FAILED ${step}: ${e?.name ?? "error"} (status ${e?.statusCode ?? "-"}): ${e?.message ?? e}`);
    if (e?.details !== undefined) console.error(`  details: ${JSON.stringify(e.details)}`);
  }
  process.exit(1);
}
