#!/usr/bin/env bash
# A tour of every route of the ratd contract (§2-§12), and of projects
# (beside the contract), with curl, against a running rat-api:
# `cargo xtask dev` in one terminal, then
#
#     bash docs/curl-tour.sh                  # http://127.0.0.1:8080
#     RAT_API=http://host:port RAT_API_KEY=... bash docs/curl-tour.sh
#     RAT_RUNNER_API=http://127.0.0.1:8090 bash docs/curl-tour.sh   # also the runner listener's plugin routes
#
# Each call prints its method, path and status, and the tour stops at the
# first answer that is not what the contract says (status, JSON fields, the
# error envelope). It creates its own namespace (`tour_<time>`) and deletes
# it at the end, so it can run any number of times against one database.
# Needs curl and python3 (JSON checks).
set -euo pipefail

BASE="${RAT_API:-http://127.0.0.1:8080}"
AUTH=()
if [ -n "${RAT_API_KEY:-}" ]; then AUTH=(-H "Authorization: Bearer ${RAT_API_KEY}"); fi
NS="tour_$(date +%s)_$$"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CALLS=0

# call METHOD PATH EXPECTED_STATUS [curl arguments...]: the answer's body
# goes to $WORK/body, its headers to $WORK/headers.
call() {
    local method="$1" path="$2" expected="$3"
    shift 3
    local status
    status=$(curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X "$method" \
        "${AUTH[@]}" "$@" "$BASE$path")
    CALLS=$((CALLS + 1))
    printf '%-6s %-78s %s\n' "$method" "$path" "$status"
    if [ "$status" != "$expected" ]; then
        echo "FAILED: expected $expected, got $status: $(head -c 600 "$WORK/body")" >&2
        exit 1
    fi
    if [ "$status" -ge 400 ]; then check 'set(d) == {"error"} and set(d["error"]) == {"code", "type", "message"}'; fi
    if ! grep -qi '^x-request-id:' "$WORK/headers"; then
        echo "FAILED: no X-Request-ID on the answer" >&2
        exit 1
    fi
}

# callj METHOD PATH EXPECTED_STATUS JSON [curl arguments...]: `call` with a
# JSON request body.
callj() {
    local method="$1" path="$2" expected="$3" body="$4"
    shift 4
    call "$method" "$path" "$expected" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# check EXPR: a Python expression over the answer's JSON `d` must hold.
check() {
    if ! python3 - "$1" "$WORK/body" <<'EOF'
import json, sys
expr, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
sys.exit(0 if eval(expr, {"d": d}) else 1)
EOF
    then
        echo "FAILED: $1 does not hold for $(head -c 600 "$WORK/body")" >&2
        exit 1
    fi
}

# field EXPR: prints a value from the answer's JSON `d`.
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[2])); print(eval(sys.argv[1]))' "$1" "$WORK/body"; }

P="/api/v1/pipelines/$NS/bronze/orders"

echo "== §2 health and features"
call GET /health 200; check 'd["status"] == "ok" and {"version", "git_commit", "build_time"} <= set(d)'
call GET /health/live 200
call GET /health/ready 200; check 'd["status"] == "ready" and set(d["checks"]) == {"postgres", "s3"}'
call GET /metrics 200; grep -q '^rat_http_requests_total' "$WORK/body" || { echo "FAILED: no request counter" >&2; exit 1; }
call GET /api/v1/features 200; check 'd["namespaces"] is True and "edition" in d and isinstance(d["plugins"], dict) and d["multi_user"] is False'
call GET '/api/v1/plugins?status=enabled' 200; check 'isinstance(d, list)'
# Plugins register on the runner listener (docs/api.md); an admin removes one.
call DELETE /api/v1/plugins/no_such_plugin 404
# With the runner listener given (RAT_RUNNER_API, and RAT_RUNNER_TOKEN when it
# needs one): a plugin registers and reports its health there, shows in the
# registry, and an admin removes it.
if [ -n "${RAT_RUNNER_API:-}" ]; then
    echo "== runner listener: plugins"
    PLUGIN="tour_plugin_$$"
    API_BASE="$BASE"
    API_AUTH=("${AUTH[@]}")
    BASE="$RAT_RUNNER_API"
    AUTH=()
    if [ -n "${RAT_RUNNER_TOKEN:-}" ]; then AUTH=(-H "Authorization: Bearer ${RAT_RUNNER_TOKEN}"); fi
    callj POST /api/v1/internal/plugins/register 200 \
        "{\"name\":\"$PLUGIN\",\"slot\":\"executor\",\"image\":\"ghcr.io/example/tour:1\"}"
    check "d['name'] == '$PLUGIN'"
    callj POST "/api/v1/internal/plugins/$PLUGIN/health" 200 '{"status":"healthy"}'; check "d['status'] == 'healthy'"
    callj POST "/api/v1/internal/plugins/$PLUGIN/health" 400 '{"status":"sleepy"}'
    BASE="$API_BASE"
    AUTH=("${API_AUTH[@]}")
    call GET /api/v1/plugins 200; check "any(p['name'] == '$PLUGIN' and p['status'] == 'healthy' for p in d)"
    call DELETE "/api/v1/plugins/$PLUGIN" 204
    call DELETE "/api/v1/plugins/$PLUGIN" 404
fi
call GET /api/v1/me 200; check 'd["user_id"] in ("community", "api-key") and d["is_admin"] is True'
# Personal access tokens need multi-user mode (RAT_OIDC_ISSUER); this tour runs without it.
callj POST /api/v1/me/tokens 409 '{"name":"tour"}'
call GET /api/v1/me/tokens 409
call GET /api/v1/openapi.json 200; check 'd["openapi"].startswith("3")'
call GET /api/v1/no-such-route 404; check 'd["error"]["type"] == "NOT_FOUND"'
call PATCH /api/v1/namespaces 405
if [ -n "${RAT_API_KEY:-}" ]; then
    SAVED=("${AUTH[@]}")
    AUTH=(-H "Authorization: Bearer wrong-key")
    call GET /api/v1/namespaces 401; check 'd["error"]["code"] == "UNAUTHENTICATED"'
    AUTH=("${SAVED[@]}")
fi

echo "== §3 namespaces"
callj POST /api/v1/namespaces 201 "{\"name\":\"$NS\",\"description\":\"curl tour\"}"; check "d['name'] == '$NS' and len(d['id']) == 36"
callj POST /api/v1/namespaces 409 "{\"name\":\"$NS\"}"; check 'd["error"]["code"] == "ALREADY_EXISTS"'
callj POST /api/v1/namespaces 400 '{"name":"Bad Name"}'
call POST /api/v1/namespaces 400 -H 'Content-Type: application/json' --data-binary '{"name":'
call GET '/api/v1/namespaces?limit=200' 200; check "any(n['name'] == '$NS' and len(n['id']) == 36 for n in d['namespaces']) and d['total'] >= 1"
call GET '/api/v1/namespaces?limit=abc' 400
callj PUT "/api/v1/namespaces/$NS" 204 '{"description":"changed"}'
callj PUT /api/v1/namespaces/no_such_namespace 404 '{"description":"x"}'
call DELETE /api/v1/namespaces/default 403; check 'd["error"]["code"] == "FORBIDDEN"'

echo "== §4 pipelines"
callj POST /api/v1/pipelines 201 "{\"namespace\":\"$NS\",\"layer\":\"bronze\",\"name\":\"orders\",\"description\":\"raw orders\"}"
check "d['s3_path'] == '$NS/pipelines/bronze/orders/' and d['files_created'] == ['pipeline.sql', 'config.yaml']"
callj POST /api/v1/pipelines 201 "{\"namespace\":\"$NS\",\"layer\":\"silver\",\"name\":\"clean\",\"type\":\"python\"}"
callj POST /api/v1/pipelines 409 "{\"namespace\":\"$NS\",\"layer\":\"bronze\",\"name\":\"orders\"}"
callj POST /api/v1/pipelines 400 "{\"namespace\":\"$NS\",\"layer\":\"platinum\",\"name\":\"x\"}"
callj POST /api/v1/pipelines 404 '{"namespace":"no_such_namespace","layer":"bronze","name":"x"}'
call GET "$P" 200
check '{"id","namespace","layer","name","type","s3_path","description","owner","published_at","published_versions","draft_dirty","max_versions","retention_config","created_at","updated_at"} <= set(d)'
call GET "/api/v1/pipelines/$NS/bronze/missing" 404
call GET "/api/v1/pipelines/$NS/platinum/orders" 400
callj PUT "$P" 200 '{"description":"all orders","max_versions":5}'; check 'd["description"] == "all orders" and d["max_versions"] == 5'
callj PUT "$P" 200 '{"description":"all the orders","owner":""}'; check 'd["description"] == "all the orders" and d["owner"]'
# Optimistic locking (seed 004): the ETag of a read, sent back as If-Match.
call GET "$P" 200
ETAG=$(grep -i '^etag:' "$WORK/headers" | cut -d' ' -f2- | tr -d '\r')
callj PUT "$P" 200 '{"description":"all the orders, again"}' -H "If-Match: $ETAG"
callj PUT "$P" 412 '{"description":"stale"}' -H "If-Match: $ETAG"; check 'd["error"]["code"] == "ABORTED"'
call GET "/api/v1/pipelines?namespace=$NS&search=ORDERS&sort=name" 200; check 'd["total"] == 1 and d["pipelines"][0]["name"] == "orders"'
call GET "/api/v1/pipelines?namespace=$NS&sort=bogus" 400
call DELETE "/api/v1/pipelines/$NS/silver/clean" 204
call GET "/api/v1/pipelines/$NS/silver/clean" 404
# Undo a delete within the grace period (seed 000, "Soft Deletes").
call GET "/api/v1/pipelines?namespace=$NS&deleted=true" 200
check 'd["total"] == 1 and d["pipelines"][0]["name"] == "clean" and {"deleted_at", "purge_after"} <= set(d["pipelines"][0])'
CLEAN_ID=$(field 'd["pipelines"][0]["id"]')
call GET "/api/v1/pipelines/deleted/$CLEAN_ID" 200; check "d['id'] == '$CLEAN_ID'"
call POST "/api/v1/pipelines/$NS/silver/clean/restore" 200; check "d['id'] == '$CLEAN_ID'"
call GET "/api/v1/pipelines/$NS/silver/clean" 200
call POST "/api/v1/pipelines/$NS/silver/clean/restore" 404
call DELETE "/api/v1/pipelines/$NS/silver/clean" 204

echo "== §5 files"
call GET "/api/v1/files?prefix=$NS/pipelines/bronze/orders/" 200; check 'sorted(f["type"] for f in d["files"]) == ["config", "pipeline-sql"]'
call GET /api/v1/files 400
callj PUT "/api/v1/files/$NS/pipelines/bronze/orders/pipeline.sql" 200 '{"content":"SELECT 1 AS id"}'
check 'd["status"] == "written" and d["version_id"]'
call GET "/api/v1/files/$NS/pipelines/bronze/orders/pipeline.sql" 200; check 'd["content"] == "SELECT 1 AS id" and d["size"] == 14'
call GET "/api/v1/files/$NS/pipelines/bronze/orders/nothing.sql" 404
callj PUT "/api/v1/files/$NS/pipelines/bronze/orders/..%252Fescape.sql" 400 '{"content":"x"}'
printf 'a,b\n1,2\n' > "$WORK/seed.csv"
call POST /api/v1/files/upload 201 -F "path=$NS/pipelines/bronze/orders/seed.csv" -F "file=@$WORK/seed.csv"
check 'd["status"] == "uploaded" and d["size"] == 8 and d["version_id"]'
call DELETE "/api/v1/files/$NS/pipelines/bronze/orders/seed.csv" 204
call GET "$P" 200; check 'd["draft_dirty"] is True'

echo "== §6 publish, versions, rollback"
callj POST "$P/publish" 200 '{"message":"first"}'
check "d['status'] == 'published' and d['version'] == 1 and '$NS/pipelines/bronze/orders/pipeline.sql' in d['versions']"
callj PUT "/api/v1/files/$NS/pipelines/bronze/orders/pipeline.sql" 200 '{"content":"SELECT 2 AS id"}'
callj POST "$P/publish" 200 '{}'; check 'd["version"] == 2'
call GET "$P/versions" 200; check '[v["version_number"] for v in d["versions"]] == [2, 1] and d["total"] == 2'
call GET "$P/versions/1" 200; check 'd["message"] == "first" and set(d) >= {"id","pipeline_id","version_number","message","published_versions","created_at"}'
call GET "$P/versions/0" 400
call GET "$P/versions/99" 404
callj POST "$P/rollback" 200 '{"version":1}'
check 'd == {"status": "rolled_back", "from_version": 1, "new_version": 3, "message": "Rollback to v1"}'
call GET "$P" 200; check 'd["draft_dirty"] is True'
callj POST "$P/rollback" 404 '{"version":42}'

echo "== §7 runs"
callj POST /api/v1/pipelines 201 "{\"namespace\":\"$NS\",\"layer\":\"gold\",\"name\":\"never_published\"}"
callj POST /api/v1/runs 409 "{\"namespace\":\"$NS\",\"layer\":\"gold\",\"pipeline\":\"never_published\"}"
check 'd["error"]["code"] == "FAILED_PRECONDITION"'
callj POST /api/v1/runs 202 "{\"namespace\":\"$NS\",\"layer\":\"bronze\",\"pipeline\":\"orders\"}"
check 'd["status"] == "pending"'
RUN=$(field 'd["run_id"]')
call GET "/api/v1/runs/$RUN" 200
check '{"id","pipeline_id","status","trigger","started_at","finished_at","duration_ms","rows_written","error","logs_s3_path","created_at"} <= set(d) and d["trigger"] == "manual"'
call GET /api/v1/runs/not-a-uuid 404
call GET "/api/v1/runs?namespace=$NS&pipeline=orders&sort=-created_at" 200; check 'd["total"] >= 1'
call GET "/api/v1/runs?started_after=yesterday" 400
call GET "/api/v1/runs/$RUN/logs" 200; check 'isinstance(d["logs"], list) and "status" in d'
# The dev runner may already have finished it: cancel answers 200, or 409
# once the run is terminal.
STATUS=$(curl -sS -o "$WORK/body" -w '%{http_code}' -X POST "${AUTH[@]}" "$BASE/api/v1/runs/$RUN/cancel")
CALLS=$((CALLS + 1))
printf '%-6s %-78s %s\n' POST "/api/v1/runs/$RUN/cancel" "$STATUS"
case "$STATUS" in
    200) check 'd["status"] == "cancelled"' ;;
    409) check 'd["error"]["type"] == "CONFLICT"' ;;
    *) echo "FAILED: cancel answered $STATUS" >&2; exit 1 ;;
esac
call POST "/api/v1/runs/$RUN/cancel" 409
call GET "/api/v1/runs/$RUN/logs" 200 -H 'Accept: text/event-stream' --max-time 10
grep -q '^event: status' "$WORK/body" || { echo "FAILED: the finished run's stream has no status event" >&2; exit 1; }

echo "== §8 schedules"
callj POST /api/v1/schedules 201 "{\"namespace\":\"$NS\",\"layer\":\"bronze\",\"pipeline\":\"orders\",\"cron\":\"0 3 * * *\",\"enabled\":false}"
check 'd["cron"] == "0 3 * * *" and d["enabled"] is False'
SCHEDULE=$(field 'd["id"]')
callj POST /api/v1/schedules 400 "{\"namespace\":\"$NS\",\"layer\":\"bronze\",\"pipeline\":\"orders\",\"cron\":\"61 * * * *\"}"
call GET "/api/v1/schedules/$SCHEDULE" 200
check '{"id","pipeline_id","cron","enabled","last_run_id","last_run_at","next_run_at","created_at","updated_at"} <= set(d) and d["next_run_at"] is None'
callj PUT "/api/v1/schedules/$SCHEDULE" 200 '{"cron":"30 4 * * *","enabled":true}'; check 'd["cron"] == "30 4 * * *" and d["next_run_at"]'
callj PUT "/api/v1/schedules/$SCHEDULE" 400 '{"cron":"not a cron"}'
call GET /api/v1/schedules 200; check 'd["total"] >= 1'
call DELETE "/api/v1/schedules/$SCHEDULE" 204
call GET "/api/v1/schedules/$SCHEDULE" 404

echo "== §9 triggers and webhooks"
callj POST "$P/triggers" 201 '{"type":"webhook","config":{},"cooldown_seconds":0}'
check 'len(d["webhook_token"]) == 64 and d["webhook_url"]'
TOKEN=$(field 'd["webhook_token"]')
TRIGGER=$(field 'd["id"]')
callj POST "$P/triggers" 201 "{\"type\":\"cron\",\"config\":{\"cron_expr\":\"0 5 * * *\"},\"enabled\":false}"
callj POST "$P/triggers" 400 '{"type":"cron","config":{"cron_expr":"nope"}}'
callj POST "$P/triggers" 400 '{"type":"webhook","config":{"token_hash":"00"}}'
call GET "$P/triggers" 200; check 'd["total"] == 2 and all("webhook_token" not in t for t in d["triggers"])'
call GET "$P/triggers/$TRIGGER" 200; check 'd["type"] == "webhook" and "token_hash" not in d["config"]'
callj PUT "$P/triggers/$TRIGGER" 200 '{"cooldown_seconds":3600}'; check 'd["cooldown_seconds"] == 3600'
call GET "/api/v1/pipelines/$NS/gold/never_published/triggers/$TRIGGER" 404
call POST /api/v1/webhooks 201 -H "X-Webhook-Token: $TOKEN"; check 'set(d) == {"run_id"}'
call POST /api/v1/webhooks 429 -H "X-Webhook-Token: $TOKEN"
call POST /api/v1/webhooks 404 -H "X-Webhook-Token: $(printf '%064d' 0)"
call DELETE "$P/triggers/$TRIGGER" 204
call GET "$P/triggers/$TRIGGER" 404

echo "== §10 quality tests"
callj POST "$P/tests" 201 '{"name":"no_null_ids","sql":"SELECT * FROM t WHERE id IS NULL","severity":"error"}'
check "d == {'name': 'no_null_ids', 'severity': 'error', 'path': '$NS/pipelines/bronze/orders/tests/quality/no_null_ids.sql'}"
callj POST "$P/tests" 409 '{"name":"no_null_ids","sql":"SELECT 1"}'
callj POST "$P/tests" 400 '{"name":"bad","sql":"SELECT 1","severity":"fatal"}'
call GET "$P/tests" 200; check 'd["total"] == 1 and set(d["tests"][0]) >= {"name","sql","severity","description","published"}'
call POST "$P/tests/run" 200; check '{"results","passed","failed","total"} <= set(d)'
# RAT's TypeScript SDK uses /tests/{ns}/{layer}/{name}: the same answers.
call GET "/api/v1/tests/$NS/bronze/orders" 200; check 'd["total"] == 1 and d["tests"][0]["name"] == "no_null_ids"'
call POST "/api/v1/tests/$NS/bronze/orders/run" 200; check 'd["total"] == 1'
call DELETE "$P/tests/no_null_ids" 204
call DELETE "$P/tests/no_null_ids" 404

echo "== §11 landing zones"
Z="/api/v1/landing-zones/$NS/drops"
callj POST /api/v1/landing-zones 201 "{\"namespace\":\"$NS\",\"name\":\"drops\",\"description\":\"partner drops\"}"
callj POST /api/v1/landing-zones 409 "{\"namespace\":\"$NS\",\"name\":\"drops\"}"
call GET "/api/v1/landing-zones?namespace=$NS" 200; check 'd["total"] == 1'
call GET "$Z" 200
check '{"id","namespace","name","description","owner","expected_schema","processed_max_age_days","auto_purge","created_at","updated_at","file_count","total_bytes"} <= set(d)'
callj PUT "$Z" 200 '{"description":"all partner drops"}'
ZONE_ID=$(field 'd["id"]')
# Zones are shareable like pipelines, tables and namespaces.
callj POST /api/v1/sharing 201 "{\"object_type\":\"landing_zone\",\"object_id\":\"$ZONE_ID\",\"shared_with\":\"role:partners\",\"access_level\":\"write\"}"
ZONE_SHARE=$(field 'd["id"]')
call GET "/api/v1/sharing?object_type=landing_zone&object_id=$ZONE_ID" 200; check 'd["total"] == 1 and d["shares"][0]["shared_with"] == "role:partners"'
call DELETE "/api/v1/sharing/$ZONE_SHARE" 204
callj POST "$P/triggers" 201 "{\"type\":\"file_pattern\",\"config\":{\"namespace\":\"$NS\",\"zone_name\":\"drops\",\"pattern\":\"*.csv\"}}"
printf 'id\n1\n' > "$WORK/orders.csv"
call POST "$Z/files" 201 -F "file=@$WORK/orders.csv"
check '{"id","zone_id","filename","s3_path","size_bytes","content_type","uploaded_by","uploaded_at"} <= set(d) and d["filename"].endswith("_orders.csv")'
FILE=$(field 'd["id"]')
call GET "/api/v1/runs?namespace=$NS&pipeline=orders" 200
check "any(r['trigger'] == 'trigger:file_pattern:$NS/drops:*.csv' for r in d['runs'])"
call GET "$Z/files" 200; check 'd["total"] == 1'
call GET "$Z/files/$FILE" 200
call GET "/api/v1/landing-zones/$NS/other/files/$FILE" 404
call POST "$Z/samples" 201 -F "file=@$WORK/orders.csv"
call GET "$Z/samples" 200; check 'd["total"] == 1'
call DELETE "$Z/samples/orders.csv" 204
call GET "$Z/lifecycle" 200; check 'set(d) >= {"processed_max_age_days", "auto_purge"}'
callj PUT "$Z/lifecycle" 200 '{"processed_max_age_days":7,"auto_purge":true}'; check 'd["processed_max_age_days"] == 7 and d["auto_purge"] is True'
call GET "$Z/lifecycle" 200; check 'd["processed_max_age_days"] == 7 and d["auto_purge"] is True'
call DELETE "$Z/files/$FILE" 204

echo "== §12 table metadata, sharing, audit, retention"
call GET "/api/v1/tables/$NS/bronze/orders/metadata" 404
callj PUT "/api/v1/tables/$NS/bronze/orders/metadata" 200 '{"description":"orders table","column_descriptions":{"id":"order id"}}'
check 'd["description"] == "orders table" and d["column_descriptions"] == {"id": "order id"}'
call GET "/api/v1/tables/$NS/bronze/orders/metadata" 200
call GET "$P" 200
PIPELINE_ID=$(field 'd["id"]')
callj POST /api/v1/sharing 201 "{\"object_type\":\"pipeline\",\"object_id\":\"$PIPELINE_ID\",\"shared_with\":\"role:analysts\",\"access_level\":\"read\"}"
check 'd["shared_with"] == "role:analysts" and d["access_level"] == "read" and d["granted_by"] in ("community", "api-key")'
SHARE=$(field 'd["id"]')
call GET "/api/v1/sharing?object_type=pipeline&object_id=$PIPELINE_ID" 200; check 'd["total"] == 1 and d["shares"][0]["id"] == "'"$SHARE"'"'
call GET "/api/v1/sharing?object_type=pipeline" 400
call DELETE "/api/v1/sharing/$SHARE" 204
call DELETE "/api/v1/sharing/$SHARE" 404
callj POST /api/v1/sharing/transfer 200 "{\"resource_type\":\"pipeline\",\"resource_id\":\"$PIPELINE_ID\",\"to_user_id\":\"alice\"}"
check "d == {'transferred': True, 'resource_id': '$PIPELINE_ID', 'new_owner': 'alice'}"
# The tour's caller is an admin: it may hand on what it no longer owns.
callj POST /api/v1/sharing/transfer 200 "{\"resource_type\":\"pipeline\",\"resource_id\":\"$PIPELINE_ID\",\"to_user_id\":\"bob\"}"
check 'd["new_owner"] == "bob"'
call GET '/api/v1/audit?action=pipeline.create&limit=5' 200; check 'd["total"] >= 1 and all(e["action"] == "pipeline.create" for e in d["entries"])'
call GET '/api/v1/audit?since=not-a-time' 400
call GET /api/v1/admin/retention/config 200; check 'len(d["config"]) == 11'
KEEP_RUNS=$(field 'd["config"]["runs_max_per_pipeline"]')
callj PUT /api/v1/admin/retention/config 200 '{"config":{"runs_max_per_pipeline":150}}'; check 'd["config"]["runs_max_per_pipeline"] == 150'
callj PUT /api/v1/admin/retention/config 400 '{"config":{"audit_log_max_age_days":0}}'
callj PUT /api/v1/admin/retention/config 200 "{\"config\":{\"runs_max_per_pipeline\":$KEEP_RUNS}}"
call GET /api/v1/admin/retention/status 200
call POST /api/v1/admin/retention/run 202
call GET "$P/retention" 200; check 'set(d) == {"system", "overrides", "effective"}'
callj PUT "$P/retention" 200 '{"runs_max_per_pipeline":10}'; check 'd["effective"]["runs_max_per_pipeline"] == 10'
callj PUT "$P/retention" 200 '{"logs_max_age_days":3}'; check 'd["overrides"] == {"logs_max_age_days": 3}'
callj PUT "$P/retention" 400 '{"audit_log_max_age_days":3}'

echo "== projects (not in the ratd contract: groups of pipelines and tables, see docs/access.md)"
PROJECT_NAME="Tour $NS"
callj POST /api/v1/projects 201 "{\"name\":\"  $PROJECT_NAME \",\"description\":\"tour\"}"
check 'd["name"] == "'"$PROJECT_NAME"'" and d["description"] == "tour" and d["created_by"] in ("community", "api-key")'
PROJECT=$(field 'd["id"]')
callj POST /api/v1/projects 409 "{\"name\":\"$PROJECT_NAME\"}"
callj POST /api/v1/projects 400 '{"name":"  "}'
call GET "/api/v1/projects?search=$NS" 200; check 'd["total"] == 1 and d["projects"][0]["id"] == "'"$PROJECT"'"'
call GET "/api/v1/projects/$PROJECT" 200; check 'd["name"] == "'"$PROJECT_NAME"'"'
call GET /api/v1/projects/not-a-uuid 404
callj PUT "/api/v1/projects/$PROJECT" 200 '{"description":"changed"}'
check 'd["description"] == "changed" and d["name"] == "'"$PROJECT_NAME"'"'
call GET "/api/v1/tables/$NS/bronze/orders/metadata" 200
TABLE_ID=$(field 'd["id"]')
MEMBERS="/api/v1/projects/$PROJECT/members"
callj POST "$MEMBERS" 201 "{\"object_type\":\"pipeline\",\"object_id\":\"$PIPELINE_ID\"}"
check 'd["project_id"] == "'"$PROJECT"'" and d["object_type"] == "pipeline" and d["object_id"] == "'"$PIPELINE_ID"'"'
callj POST "$MEMBERS" 409 "{\"object_type\":\"pipeline\",\"object_id\":\"$PIPELINE_ID\"}"
callj POST "$MEMBERS" 201 "{\"object_type\":\"table\",\"object_id\":\"$TABLE_ID\"}"
callj POST "$MEMBERS" 404 "{\"object_type\":\"table\",\"object_id\":\"$PIPELINE_ID\"}"
callj POST "$MEMBERS" 400 '{"object_type":"namespace","object_id":"x"}'
call GET "$MEMBERS?limit=1" 200
check 'd["total"] == 2 and len(d["members"]) == 1 and d["members"][0]["display_name"] == "'"$NS"'.bronze.orders"'
call DELETE "$MEMBERS/pipeline/$PIPELINE_ID" 204
call DELETE "$MEMBERS/pipeline/$PIPELINE_ID" 404
call GET "$MEMBERS" 200; check 'd["total"] == 1 and d["members"][0]["object_type"] == "table"'
call DELETE "/api/v1/projects/$PROJECT" 204
call GET "/api/v1/projects/$PROJECT" 404

echo "== §1 body limits, then clean up"
head -c 1100000 /dev/zero | tr '\0' 'a' > "$WORK/big"
call PUT "/api/v1/namespaces/$NS" 413 -H 'Content-Type: application/json' --data-binary "@$WORK/big"
call DELETE "/api/v1/namespaces/$NS" 204
call GET "$P" 404
call GET "/api/v1/landing-zones/$NS/drops" 404
echo "curl tour: all $CALLS calls answered as the contract says"
