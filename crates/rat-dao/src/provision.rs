//! Least privilege: the two roles of a tenant schema, made by an
//! administrator (a superuser, or a role with `CREATEROLE` that is a member
//! of the owner role and may grant on the database).
//!
//! - The **owner** role owns the schema and everything migrations create in
//!   it; migrations run as this role (`RAT_MIGRATE_DATABASE_URL`).
//! - The **app** role is what the services connect as (`RAT_DATABASE_URL`):
//!   `USAGE` on the schema (never `CREATE`), `SELECT`, `INSERT`, `UPDATE`,
//!   `DELETE` on its tables (never `TRUNCATE`, `REFERENCES`, `TRIGGER`),
//!   `USAGE`, `SELECT`, `UPDATE` on its sequences, `EXECUTE` on its
//!   functions, and only `SELECT` on the migration history. It owns nothing,
//!   so `ALTER` and `DROP` are refused too. Default privileges of the owner
//!   in the schema grant the same on whatever later migrations create.
//! - Both get `CONNECT` on the database and, in that database, `search_path`
//!   set to the schema (a transaction pooler passes no startup options, so
//!   the role's setting is what puts its sessions in the schema); the app
//!   role also gets a `statement_timeout`.
//! - Optionally ([`Provision::revoke_public_connect`]) `CONNECT` on the
//!   database is revoked from `PUBLIC`, so only roles granted it explicitly
//!   (the tenants' roles, superusers) may connect.
//!
//! Every statement is built by the server (`format()` with `%I` for
//! identifiers and `%L` for literals) from fixed templates of this module
//! and validated names; passwords are only ever `%L` arguments. Provisioning
//! runs in one transaction and is idempotent: run again, existing roles get
//! their password (when one is given) and privileges set again.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::DaoError;
use crate::connect::{SchemaName, check_identifier};

/// Longest role name (Postgres' `NAMEDATALEN - 1`).
pub const MAX_ROLE_LEN: usize = 63;

/// Default `statement_timeout` of the app role.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A validated role name: the rules of [`SchemaName`] (lowercase ASCII
/// letters, digits and `_`, starting with a letter or `_`, not `pg_…`), at
/// most [`MAX_ROLE_LEN`] bytes, and none of the names Postgres gives a
/// meaning in `GRANT` (`public`, `none`, `current_user`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RoleName {
    type Err = DaoError;

    fn from_str(name: &str) -> Result<Self, DaoError> {
        check_identifier("role", name, MAX_ROLE_LEN)?;
        if ["public", "none", "current_user", "session_user", "current_role", "all"].contains(&name) {
            return Err(DaoError::Config {
                reason: format!("role name {name:?} is a word Postgres reserves in GRANT"),
            });
        }
        Ok(RoleName(name.to_owned()))
    }
}

/// One role to create or update.
#[derive(Clone)]
pub struct RoleSpec {
    /// Its name.
    pub name: RoleName,
    /// Its password; `None` leaves an existing role's password as it is
    /// (and creates a new role without one).
    pub password: Option<String>,
}

impl fmt::Debug for RoleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("RoleSpec")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

/// What to provision: a schema, its owner and its app role.
#[derive(Debug, Clone)]
pub struct Provision {
    /// The tenant schema (created, owned by the owner, when missing).
    pub schema: SchemaName,
    /// The role that owns the schema and runs migrations.
    pub owner: RoleSpec,
    /// The role the services connect as.
    pub app: RoleSpec,
    /// `statement_timeout` of the app role in this database.
    pub statement_timeout: Duration,
    /// Revoke `CONNECT` on the database from `PUBLIC` (roles not granted it
    /// explicitly can then no longer connect).
    pub revoke_public_connect: bool,
}

impl Provision {
    /// The two roles of `schema`, no passwords, the default statement
    /// timeout, `CONNECT` left to `PUBLIC`.
    pub fn new(schema: SchemaName, owner: RoleName, app: RoleName) -> Self {
        Provision {
            schema,
            owner: RoleSpec {
                name: owner,
                password: None,
            },
            app: RoleSpec {
                name: app,
                password: None,
            },
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            revoke_public_connect: false,
        }
    }
}

/// What [`provision`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionReport {
    /// The database provisioned in.
    pub database: String,
    /// Whether the owner role was created (else updated).
    pub owner_created: bool,
    /// Whether the app role was created (else updated).
    pub app_created: bool,
    /// Whether the schema was created (else it existed).
    pub schema_created: bool,
}

/// Opens an administrator's session to `url` (TLS as its `sslmode` asks),
/// in no particular schema, for [`provision`].
pub async fn connect_admin(url: &str, application_name: &str) -> Result<tokio_postgres::Client, DaoError> {
    let endpoint = crate::connect::Endpoint::parse(url)?;
    let mut config = endpoint.config().clone();
    config.application_name(application_name);
    config.connect_timeout(Duration::from_secs(10));
    endpoint.connect_with(&config).await
}

/// Runs the statement the server builds from `template` (a fixed string of
/// this module: `%I` identifiers, `%L` literals) and `args`.
async fn run(
    client: &impl tokio_postgres::GenericClient,
    template: &'static str,
    args: &[&str],
) -> Result<(), DaoError> {
    let statement: String = client
        .query_one("SELECT format($1::text, VARIADIC $2::text[])", &[&template, &args])
        .await?
        .get(0);
    client.batch_execute(&statement).await?;
    Ok(())
}

/// Creates `role` (`LOGIN`, no other attribute) or, when it exists, sets its
/// password (when one is given) and `LOGIN`. Returns whether it was created.
async fn ensure_role(client: &tokio_postgres::Transaction<'_>, role: &RoleSpec) -> Result<bool, DaoError> {
    let name = role.name.as_str();
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await?
        .is_some();
    match (exists, role.password.as_deref()) {
        (false, Some(password)) => run(client, "CREATE ROLE %I LOGIN PASSWORD %L", &[name, password]).await?,
        (false, None) => run(client, "CREATE ROLE %I LOGIN", &[name]).await?,
        (true, Some(password)) => run(client, "ALTER ROLE %I LOGIN PASSWORD %L", &[name, password]).await?,
        (true, None) => run(client, "ALTER ROLE %I LOGIN", &[name]).await?,
    }
    Ok(!exists)
}

/// Refuses an app role that would hold more than its grants: a superuser,
/// one that bypasses row security or may create roles or databases, or a
/// member of the owner role (it would inherit the owner's rights).
async fn check_app_role(client: &tokio_postgres::Transaction<'_>, provision: &Provision) -> Result<(), DaoError> {
    let app = provision.app.name.as_str();
    let owner = provision.owner.name.as_str();
    if app == owner {
        return Err(DaoError::Config {
            reason: format!("the owner and the app role must differ (both are {app})"),
        });
    }
    let row = client
        .query_one(
            "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb, \
                    pg_has_role($1, $2, 'MEMBER') \
             FROM pg_roles WHERE rolname = $1",
            &[&app, &owner],
        )
        .await?;
    let (privileged, member): (bool, bool) = (row.get(0), row.get(1));
    if privileged {
        return Err(DaoError::Config {
            reason: format!(
                "role {app} is a superuser, bypasses row security, or may create roles or databases: the app \
                 role must be an ordinary role"
            ),
        });
    }
    if member {
        return Err(DaoError::Config {
            reason: format!("role {app} is a member of {owner}: the app role must not hold the owner's rights"),
        });
    }
    Ok(())
}

/// Creates or updates the owner and app roles of `provision.schema` in the
/// database `client` is connected to, creates the schema (owned by the
/// owner) when missing, hands an existing schema and its objects to the
/// owner, and grants the app role what the services need and nothing more.
/// One transaction; idempotent.
pub async fn provision(
    client: &mut tokio_postgres::Client,
    provision: &Provision,
) -> Result<ProvisionReport, DaoError> {
    let tx = client.transaction().await?;
    let database: String = tx.query_one("SELECT current_database()::text", &[]).await?.get(0);
    let schema = provision.schema.as_str();
    let owner = provision.owner.name.as_str();
    let app = provision.app.name.as_str();

    let owner_created = ensure_role(&tx, &provision.owner).await?;
    let app_created = ensure_role(&tx, &provision.app).await?;
    // Neither role is a superuser or may create roles, whatever it was.
    for role in [owner, app] {
        run(
            &tx,
            "ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
            &[role],
        )
        .await?;
    }
    check_app_role(&tx, provision).await?;

    // The database: both may connect; optionally nobody else.
    run(&tx, "GRANT CONNECT ON DATABASE %I TO %I, %I", &[&database, owner, app]).await?;
    if provision.revoke_public_connect {
        run(&tx, "REVOKE CONNECT ON DATABASE %I FROM PUBLIC", &[&database]).await?;
    }

    // The schema, owned by the owner; an existing one and whatever is in
    // it are handed over, so the owner's migrations may alter them.
    let schema_created = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await?
        .is_none();
    if schema_created {
        run(&tx, "CREATE SCHEMA %I AUTHORIZATION %I", &[schema, owner]).await?;
    } else {
        run(&tx, "ALTER SCHEMA %I OWNER TO %I", &[schema, owner]).await?;
        adopt_objects(&tx, schema, owner).await?;
    }

    // The schema's privileges: the owner's, usage for the app, nothing for
    // anyone else (in `public`, only `CREATE` is taken from PUBLIC: other
    // software of the database may rely on using it).
    if provision.schema.is_default() {
        run(&tx, "REVOKE CREATE ON SCHEMA %I FROM PUBLIC", &[schema]).await?;
    } else {
        run(&tx, "REVOKE ALL ON SCHEMA %I FROM PUBLIC", &[schema]).await?;
    }
    run(&tx, "REVOKE ALL ON SCHEMA %I FROM %I", &[schema, app]).await?;
    run(&tx, "GRANT USAGE ON SCHEMA %I TO %I", &[schema, app]).await?;

    // What exists now.
    run(&tx, "REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I", &[schema, app]).await?;
    run(
        &tx,
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I",
        &[schema, app],
    )
    .await?;
    run(&tx, "REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I", &[schema, app]).await?;
    run(
        &tx,
        "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I",
        &[schema, app],
    )
    .await?;
    run(&tx, "GRANT EXECUTE ON ALL ROUTINES IN SCHEMA %I TO %I", &[schema, app]).await?;
    restrict_history_in(&tx, &provision.schema, &provision.app.name).await?;

    // What later migrations (run as the owner) create.
    run(
        &tx,
        "ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I",
        &[owner, schema, app],
    )
    .await?;
    run(
        &tx,
        "ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I",
        &[owner, schema, app],
    )
    .await?;
    run(
        &tx,
        "ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT EXECUTE ON FUNCTIONS TO %I",
        &[owner, schema, app],
    )
    .await?;

    // Trigram search (V24): pg_trgm in its own schema, shared by every
    // tenant of the database, when the server has it and the administrator
    // may install it; otherwise search stays unindexed (docs/operations.md).
    tx.batch_execute(INSTALL_PG_TRGM).await?;

    // Role settings in this database: the schema, and for the app a bound
    // on every statement (what a pooled session cannot be given at start).
    for role in [owner, app] {
        run(
            &tx,
            "ALTER ROLE %I IN DATABASE %I SET search_path = %I",
            &[role, &database, schema],
        )
        .await?;
    }
    let timeout_ms = provision.statement_timeout.as_millis().max(1).to_string();
    run(
        &tx,
        "ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L",
        &[app, &database, &timeout_ms],
    )
    .await?;

    tx.commit().await?;
    Ok(ProvisionReport {
        database,
        owner_created,
        app_created,
        schema_created,
    })
}

/// Installs `pg_trgm` into `rat_extensions` (V24's trigram indexes) when it
/// is neither installed nor unavailable and the session may install it (a
/// superuser, or `CREATE` on the database: the extension is trusted). Fixed
/// text; concurrent provisioning and migrations take turns on the same
/// database-wide advisory lock as V24.
const INSTALL_PG_TRGM: &str = "DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('rat_extensions.pg_trgm', 0));
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm')
       AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
            OR has_database_privilege(current_database(), 'CREATE')) THEN
        CREATE SCHEMA IF NOT EXISTS rat_extensions;
        CREATE EXTENSION pg_trgm SCHEMA rat_extensions;
        GRANT USAGE ON SCHEMA rat_extensions TO PUBLIC;
    END IF;
END $$";

/// Hands every table, view, sequence, function and type of `schema` not
/// owned by `owner` to it (a schema migrated before it had an owner role).
async fn adopt_objects(tx: &tokio_postgres::Transaction<'_>, schema: &str, owner: &str) -> Result<(), DaoError> {
    // The statements are built by the server from catalog names.
    let rows = tx
        .query(
            "SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, $2::text) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
               AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $2) \
             UNION ALL \
             SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, $2::text) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'S' \
               AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $2) \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                               AND d.objid = c.oid AND d.deptype IN ('a', 'i')) \
             UNION ALL \
             SELECT format('ALTER ROUTINE %I.%I(%s) OWNER TO %I', n.nspname, p.proname, \
                           pg_get_function_identity_arguments(p.oid), $2::text) \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = $1 AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = $2) \
             UNION ALL \
             SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, $2::text) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE n.nspname = $1 AND t.typtype IN ('e', 'd', 'r') \
               AND t.typowner <> (SELECT oid FROM pg_roles WHERE rolname = $2)",
            &[&schema, &owner],
        )
        .await?;
    for row in rows {
        let statement: String = row.get(0);
        tx.batch_execute(&statement).await?;
    }
    Ok(())
}

async fn restrict_history_in(
    client: &impl tokio_postgres::GenericClient,
    schema: &SchemaName,
    app: &RoleName,
) -> Result<(), DaoError> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                            WHERE n.nspname = $1 AND c.relname = 'refinery_schema_history')",
            &[&schema.as_str()],
        )
        .await?
        .get(0);
    if exists {
        run(
            client,
            "REVOKE ALL ON %I.refinery_schema_history FROM %I",
            &[schema.as_str(), app.as_str()],
        )
        .await?;
        run(
            client,
            "GRANT SELECT ON %I.refinery_schema_history TO %I",
            &[schema.as_str(), app.as_str()],
        )
        .await?;
    }
    Ok(())
}

/// `url` (either form of connection string) with its user and password
/// replaced by `role` and `password` (`None`: no password).
pub fn connection_string_as(url: &str, role: &RoleName, password: Option<&str>) -> Result<String, DaoError> {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let (authority_end, _) = rest
            .char_indices()
            .find(|&(_, c)| c == '/' || c == '?')
            .unwrap_or((rest.len(), ' '));
        let (authority, tail) = rest.split_at(authority_end);
        let hosts = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
        let userinfo = match password {
            Some(password) => format!("{}:{}", role.as_str(), percent_encode(password)),
            None => role.as_str().to_owned(),
        };
        return Ok(format!("postgres://{userinfo}@{hosts}{tail}"));
    }
    // Key-value form: the connection's own user and password are replaced.
    tokio_postgres::Config::from_str(url).map_err(|e| DaoError::Config {
        reason: format!("database url does not parse: {e}"),
    })?;
    let (rest, _) = crate::connect::take_settings(url, &["user", "password"])?;
    let mut out = format!("{rest} user={}", role.as_str());
    if let Some(password) = password {
        let escaped = password.replace('\\', "\\\\").replace('\'', "\\'");
        out.push_str(&format!(" password='{escaped}'"));
    }
    Ok(out.trim_start().to_owned())
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_validated() {
        for good in ["rat_app", "tenant_a_owner", "_x"] {
            assert_eq!(good.parse::<RoleName>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "App",
            "1a",
            "a-b",
            "a\"b",
            "x;drop",
            "pg_read",
            "public",
            "current_user",
        ] {
            assert!(bad.parse::<RoleName>().is_err(), "{bad:?} should be refused");
        }
        assert!("a".repeat(MAX_ROLE_LEN + 1).parse::<RoleName>().is_err());
    }

    #[test]
    fn connection_strings_take_the_role() {
        let app: RoleName = "t_app".parse().unwrap();
        assert_eq!(
            connection_string_as(
                "postgres://admin:secret@h:5432/db?sslmode=require",
                &app,
                Some("p@ss w")
            )
            .unwrap(),
            "postgres://t_app:p%40ss%20w@h:5432/db?sslmode=require"
        );
        assert_eq!(
            connection_string_as("postgresql://h/db", &app, None).unwrap(),
            "postgres://t_app@h/db"
        );
        let kv = connection_string_as(
            "host=/tmp port=5 user=postgres password='old one' dbname=d",
            &app,
            Some("it's"),
        )
        .unwrap();
        assert_eq!(kv, "host=/tmp port=5 dbname=d user=t_app password='it\\'s'");
        // Without a password given, the admin's is not carried over.
        assert_eq!(
            connection_string_as("host=/tmp user=postgres password=x", &app, None).unwrap(),
            "host=/tmp user=t_app"
        );
        let config = tokio_postgres::Config::from_str(&kv).unwrap();
        assert_eq!(config.get_user(), Some("t_app"));
        assert_eq!(config.get_password(), Some(&b"it's"[..]));
    }
}
