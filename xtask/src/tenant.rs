//! `cargo xtask db roles` and `cargo xtask db tenant create`: the owner and
//! app roles of a schema (`rat_dao::provision`), made with an
//! administrator's connection, and the connection settings the services
//! then use.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rat_testkit::dao::provision::{self, Provision, RoleName, RoleSpec};
use rat_testkit::dao::{Database, SchemaName};

/// Where the administrator connects, and what the roles get besides their
/// grants.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// An administrator's connection string (a superuser, or a role with CREATEROLE that may
    /// grant on the database) to the database the schema lives in (default: the dev database,
    /// started if needed).
    #[arg(long, env = "RAT_ADMIN_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The owner role's password (default: the content of --owner-password-file, or a random
    /// one, printed once).
    #[arg(long, env = "RAT_OWNER_PASSWORD", hide_env_values = true)]
    owner_password: Option<String>,
    /// A file holding the owner role's password (trailing newline removed).
    #[arg(long, env = "RAT_OWNER_PASSWORD_FILE")]
    owner_password_file: Option<PathBuf>,
    /// The app role's password (default: the content of --app-password-file, or a random one,
    /// printed once).
    #[arg(long, env = "RAT_APP_PASSWORD", hide_env_values = true)]
    app_password: Option<String>,
    /// A file holding the app role's password (trailing newline removed).
    #[arg(long, env = "RAT_APP_PASSWORD_FILE")]
    app_password_file: Option<PathBuf>,
    /// `statement_timeout` of the app role in this database, in seconds.
    #[arg(long, default_value_t = provision::DEFAULT_STATEMENT_TIMEOUT.as_secs())]
    statement_timeout_secs: u64,
    /// Also revoke CONNECT on the database from PUBLIC: only roles granted it explicitly (each
    /// tenant's roles, superusers) may then connect.
    #[arg(long)]
    revoke_public_connect: bool,
}

/// Arguments of `cargo xtask db roles`.
#[derive(Debug, Args)]
pub(crate) struct RolesArgs {
    /// The role that owns the schema and runs migrations.
    #[arg(long)]
    owner: String,
    /// The role the services connect as.
    #[arg(long)]
    app: String,
    /// The schema.
    #[arg(long, default_value = "public")]
    schema: String,
    #[command(flatten)]
    admin: AdminArgs,
}

/// `cargo xtask db tenant …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TenantTask {
    /// Make schema NAME, owned by role NAME_owner, used by role NAME_app, migrated; print the
    /// services' connection settings.
    Create {
        /// The tenant: its schema's name (lowercase letters, digits and `_`).
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// A password given, read from a file, or made up (`true`: made up).
fn password(name: &str, value: Option<String>, file: Option<&PathBuf>) -> anyhow::Result<(String, bool)> {
    let given = match (value, file) {
        (Some(_), Some(_)) => bail!("give the {name} password or its file, not both"),
        (Some(value), None) => Some(value),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    match given {
        Some(password) if password.is_empty() => bail!("the {name} password is empty"),
        Some(password) => Ok((password, false)),
        None => Ok((format!("{:032x}", rand::random::<u128>()), true)),
    }
}

async fn admin_url(admin: &AdminArgs) -> anyhow::Result<String> {
    match &admin.database_url {
        Some(url) => Ok(url.clone()),
        None => crate::dev::ensure_dev_database(&crate::dev::DevPaths::default()).await,
    }
}

/// Provisions the roles of `schema`, and migrates it as the owner when
/// `migrate`; prints the settings of the services.
async fn provision_and_print(
    schema: SchemaName,
    owner: RoleName,
    app: RoleName,
    admin: AdminArgs,
    migrate: bool,
) -> anyhow::Result<()> {
    let url = admin_url(&admin).await?;
    let (owner_password, owner_made) = password(
        "owner",
        admin.owner_password.clone(),
        admin.owner_password_file.as_ref(),
    )?;
    let (app_password, app_made) = password("app", admin.app_password.clone(), admin.app_password_file.as_ref())?;
    let spec = Provision {
        schema: schema.clone(),
        owner: RoleSpec {
            name: owner.clone(),
            password: Some(owner_password.clone()),
        },
        app: RoleSpec {
            name: app.clone(),
            password: Some(app_password.clone()),
        },
        statement_timeout: Duration::from_secs(admin.statement_timeout_secs.max(1)),
        revoke_public_connect: admin.revoke_public_connect,
    };
    let mut client = provision::connect_admin(&url, "rat-xtask-provision")
        .await
        .context("connecting as the administrator")?;
    let report = provision::provision(&mut client, &spec)
        .await
        .context("provisioning the roles")?;
    let owner_url = provision::connection_string_as(&url, &owner, Some(&owner_password))?;
    let app_url = provision::connection_string_as(&url, &app, Some(&app_password))?;
    eprintln!(
        "database {}: role {owner} {} (owns schema {schema}{}), role {app} {}",
        report.database,
        if report.owner_created { "created" } else { "updated" },
        if report.schema_created { ", created" } else { "" },
        if report.app_created { "created" } else { "updated" },
    );
    if migrate {
        let migrated = rat_testkit::dao::migrate(&Database::new(owner_url.clone()).in_schema(schema.clone()))
            .await
            .context("migrating the schema as its owner")?;
        eprintln!(
            "schema {schema}: applied {} migration(s) as {owner}",
            migrated.applied.len()
        );
    }
    if owner_made || app_made {
        eprintln!("new random passwords are in the connection strings below: they are shown only this once");
    }
    println!("RAT_DATABASE_URL={app_url}");
    println!("RAT_MIGRATE_DATABASE_URL={owner_url}");
    println!("RAT_DB_SCHEMA={schema}");
    Ok(())
}

/// `cargo xtask db roles`.
pub(crate) async fn roles(args: RolesArgs) -> anyhow::Result<()> {
    let schema: SchemaName = args.schema.parse().context("--schema")?;
    let owner: RoleName = args.owner.parse().context("--owner")?;
    let app: RoleName = args.app.parse().context("--app")?;
    provision_and_print(schema, owner, app, args.admin, false).await
}

/// `cargo xtask db tenant …`.
pub(crate) async fn tenant(task: TenantTask) -> anyhow::Result<()> {
    match task {
        TenantTask::Create { name, admin } => {
            let schema: SchemaName = name.parse().context("the tenant's name")?;
            let owner: RoleName = format!("{schema}_owner").parse()?;
            let app: RoleName = format!("{schema}_app").parse()?;
            provision_and_print(schema, owner, app, admin, true).await
        }
    }
}
