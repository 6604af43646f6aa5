//! `ownership` and `shares`: who owns an object and who may use it.
//!
//! Objects are referenced by `(object_type, object_id)` without a foreign key;
//! triggers of migration V6 remove an object's rows here when the pipeline,
//! table metadata or namespace row is deleted.

use crate::GenericClient;
use rat_domain::{AccessLevel, ObjectType, Ownership, Page, PageRequest, Share};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const OWNERSHIP_COLUMNS: &str = "id, object_type, object_id, owner, created_at";

const SHARE_COLUMNS: &str = "id, object_type, object_id, shared_with, access_level, granted_by, granted_at";

/// The constraint named by the `Conflict` of [`transfer`] when the caller is
/// not the current owner.
pub const NOT_OWNER: &str = "not_owner";

fn ownership_from_row(row: &Row) -> Result<Ownership, DaoError> {
    Ok(Ownership {
        id: row.try_get("id")?,
        object_type: sql::parse_column(row, "object_type")?,
        object_id: row.try_get("object_id")?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
    })
}

fn share_from_row(row: &Row) -> Result<Share, DaoError> {
    Ok(Share {
        id: row.try_get("id")?,
        object_type: sql::parse_column(row, "object_type")?,
        object_id: row.try_get("object_id")?,
        shared_with: row.try_get("shared_with")?,
        access_level: sql::parse_column(row, "access_level")?,
        granted_by: row.try_get("granted_by")?,
        granted_at: row.try_get("granted_at")?,
    })
}

/// Makes `owner` the owner of the object, replacing any previous owner (the
/// row, its id and its creation time are kept).
pub async fn set_owner(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    owner: &str,
) -> Result<Ownership, DaoError> {
    let row = sql::query_one(
        client,
        "ownership",
        &format!(
            "INSERT INTO ownership (object_type, object_id, owner) VALUES ($1, $2, $3) \
             ON CONFLICT ON CONSTRAINT uq_ownership_object DO UPDATE SET owner = EXCLUDED.owner \
             RETURNING {OWNERSHIP_COLUMNS}"
        ),
        &[&object_type.as_str(), &object_id, &owner],
    )
    .await?;
    ownership_from_row(&row)
}

/// Locks the row of the object `object_type`/`object_id` until the
/// transaction ends, so that changes of its owner (each checked against the
/// owner it reads after taking this lock) happen one after the other.
/// `NotFound` when there is no such object.
pub async fn lock_object(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
) -> Result<(), DaoError> {
    let (entity, statement) = match object_type {
        ObjectType::Pipeline => ("pipeline", "SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE"),
        ObjectType::Table => ("table", "SELECT 1 FROM table_metadata WHERE id = $1 FOR UPDATE"),
        ObjectType::Namespace => ("namespace", "SELECT 1 FROM namespaces WHERE id = $1 FOR UPDATE"),
        ObjectType::LandingZone => ("landing zone", "SELECT 1 FROM landing_zones WHERE id = $1 FOR UPDATE"),
    };
    sql::query_one(client, entity, statement, &[&object_id]).await?;
    Ok(())
}

/// The object's owner, if it has one.
pub async fn get_owner(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
) -> Result<Option<Ownership>, DaoError> {
    let row = sql::query_opt(
        client,
        &format!("SELECT {OWNERSHIP_COLUMNS} FROM ownership WHERE object_type = $1 AND object_id = $2"),
        &[&object_type.as_str(), &object_id],
    )
    .await?;
    row.as_ref().map(ownership_from_row).transpose()
}

/// Hands the object from `from` to `to`, only if `from` owns it: the check is
/// the UPDATE's own `WHERE owner = from`, so two concurrent transfers cannot
/// both succeed. `NotFound { ownership }` when the object has no owner;
/// `Conflict { not_owner }` ([`NOT_OWNER`]) when someone else owns it, which
/// the caller answers with 403, not 409.
pub async fn transfer(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    from: &str,
    to: &str,
) -> Result<Ownership, DaoError> {
    let updated = sql::query_opt(
        client,
        &format!(
            "UPDATE ownership SET owner = $4 WHERE object_type = $1 AND object_id = $2 AND owner = $3 \
             RETURNING {OWNERSHIP_COLUMNS}"
        ),
        &[&object_type.as_str(), &object_id, &from, &to],
    )
    .await?;
    if let Some(row) = updated {
        return ownership_from_row(&row);
    }
    // Nothing matched: tell "no owner at all" from "owned by someone else".
    let exists = sql::query_one(
        client,
        "ownership",
        "SELECT EXISTS (SELECT 1 FROM ownership WHERE object_type = $1 AND object_id = $2)",
        &[&object_type.as_str(), &object_id],
    )
    .await?;
    if exists.try_get(0)? {
        Err(DaoError::Conflict {
            constraint: NOT_OWNER.to_owned(),
        })
    } else {
        Err(DaoError::NotFound { entity: "ownership" })
    }
}

/// Removes the object's owner; `NotFound { ownership }` when it has none.
pub async fn delete_owner(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
) -> Result<(), DaoError> {
    let deleted = sql::execute(
        client,
        "DELETE FROM ownership WHERE object_type = $1 AND object_id = $2",
        &[&object_type.as_str(), &object_id],
    )
    .await
    .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "ownership" });
    }
    Ok(())
}

/// Grants `access_level` on the object to `shared_with` (a user or
/// `role:<name>`). Granting again to the same principal replaces the level,
/// the granter and the grant time of the existing share (same id).
pub async fn grant(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    shared_with: &str,
    access_level: AccessLevel,
    granted_by: &str,
    now: OffsetDateTime,
) -> Result<Share, DaoError> {
    let row = sql::query_one(
        client,
        "share",
        &format!(
            "INSERT INTO shares (object_type, object_id, shared_with, access_level, granted_by, granted_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT ON CONSTRAINT uq_shares_object_shared_with DO UPDATE SET \
                access_level = EXCLUDED.access_level, \
                granted_by = EXCLUDED.granted_by, \
                granted_at = EXCLUDED.granted_at \
             RETURNING {SHARE_COLUMNS}"
        ),
        &[
            &object_type.as_str(),
            &object_id,
            &shared_with,
            &access_level.as_str(),
            &granted_by,
            &now,
        ],
    )
    .await?;
    share_from_row(&row)
}

/// Removes the share of the object with `shared_with`; `NotFound { share }`
/// when there is none.
pub async fn revoke(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    shared_with: &str,
) -> Result<(), DaoError> {
    let deleted = sql::execute(
        client,
        "DELETE FROM shares WHERE object_type = $1 AND object_id = $2 AND shared_with = $3",
        &[&object_type.as_str(), &object_id, &shared_with],
    )
    .await
    .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "share" });
    }
    Ok(())
}

/// The object's shares ordered by principal, one page, with the total.
pub async fn list_for_object(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    page: PageRequest,
) -> Result<Page<Share>, DaoError> {
    let object_type = object_type.as_str();
    let mut conditions = Conditions::new();
    conditions.push("object_type = $?", &object_type);
    conditions.push("object_id = $?", &object_id);
    let order = OrderBy {
        columns: &["shared_with", "id"],
        descending: false,
    };
    sql::fetch_page(
        client,
        SHARE_COLUMNS,
        "shares",
        &conditions,
        order,
        page,
        share_from_row,
    )
    .await
}

/// The shares granted to `shared_with`, newest first, one page, with the total.
pub async fn list_for_principal(
    client: &impl GenericClient,
    shared_with: &str,
    page: PageRequest,
) -> Result<Page<Share>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("shared_with = $?", &shared_with);
    let order = OrderBy {
        columns: &["granted_at", "id"],
        descending: true,
    };
    sql::fetch_page(
        client,
        SHARE_COLUMNS,
        "shares",
        &conditions,
        order,
        page,
        share_from_row,
    )
    .await
}

/// The highest level (`write` above `read`) shared on the object with any of
/// `principals` (typically a user and the user's `role:<name>`s); `None` when
/// none of them has a share. Ownership is not considered.
pub async fn access_level(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    principals: &[&str],
) -> Result<Option<AccessLevel>, DaoError> {
    if principals.is_empty() {
        return Ok(None);
    }
    let row = sql::query_opt(
        client,
        "SELECT access_level FROM shares \
         WHERE object_type = $1 AND object_id = $2 AND shared_with = ANY($3) \
         ORDER BY CASE access_level WHEN 'write' THEN 2 WHEN 'read' THEN 1 ELSE 0 END DESC \
         LIMIT 1",
        &[&object_type.as_str(), &object_id, &principals],
    )
    .await?;
    row.map(|row| sql::parse_column(&row, "access_level")).transpose()
}

/// One object and who asks about it: a question [`grants_of_many`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrantsQuestion {
    /// The object's kind.
    pub object_type: ObjectType,
    /// The object's id.
    pub object_id: Uuid,
    /// The namespace holding it (`None` for a namespace itself).
    pub namespace: Option<String>,
    /// The share principals naming the caller (the user, `role:NAME`s).
    pub principals: Vec<String>,
}

/// What the access rule reads of one object ([`Grants`]): its owner (the
/// `ownership` row), the owner of the namespace called `namespace` (the one
/// holding it; `None` for a namespace itself), and the shares naming any of
/// `principals`, on the object itself or on that namespace. One statement,
/// [`grants_of_many`]'s.
pub async fn grants(
    client: &impl GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    namespace: Option<&str>,
    principals: &[String],
) -> Result<Grants, DaoError> {
    let question = GrantsQuestion {
        object_type,
        object_id,
        namespace: namespace.map(str::to_owned),
        principals: principals.to_vec(),
    };
    let mut answers = grants_of_many(client, std::slice::from_ref(&question)).await?;
    Ok(answers.pop().unwrap_or_default())
}

/// The generation of what [`grants_of_many`] reads (`ownership`, `shares`,
/// `namespaces`): the `access_generation` counter (V19), moved forward by
/// every transaction that changes any of them, when it commits. Two
/// statements whose snapshots see the same generation see the same grants,
/// so an answer read at one generation answers any later question asked at
/// that generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessGeneration(pub i64);

/// The current [`AccessGeneration`].
pub async fn access_generation(client: &impl GenericClient) -> Result<AccessGeneration, DaoError> {
    let row = sql::query_one(
        client,
        "access generation",
        "SELECT generation FROM access_generation",
        &[],
    )
    .await?;
    Ok(AccessGeneration(row.try_get("generation")?))
}

/// [`grants`] for each of `questions`, in their order, in one statement (so
/// concurrent access checks can share a round trip).
pub async fn grants_of_many(
    client: &impl GenericClient,
    questions: &[GrantsQuestion],
) -> Result<Vec<Grants>, DaoError> {
    Ok(grants_of_many_at(client, questions).await?.1)
}

/// [`grants_of_many`], with the [`AccessGeneration`] its snapshot saw.
pub async fn grants_of_many_at(
    client: &impl GenericClient,
    questions: &[GrantsQuestion],
) -> Result<(AccessGeneration, Vec<Grants>), DaoError> {
    // The questions as rows numbered by their index, and their principals as
    // (index, name) rows; a name repeated within a question is sent once.
    let mut index = Vec::with_capacity(questions.len());
    let (mut types, mut ids, mut namespaces) = (Vec::new(), Vec::new(), Vec::new());
    let (mut asking, mut names) = (Vec::new(), Vec::new());
    for (i, question) in questions.iter().enumerate() {
        let i = i32::try_from(i).map_err(|_| DaoError::Invalid {
            constraint: "questions".to_owned(),
        })?;
        index.push(i);
        types.push(question.object_type.as_str());
        ids.push(question.object_id);
        namespaces.push(question.namespace.as_deref());
        let mut principals: Vec<&str> = question.principals.iter().map(String::as_str).collect();
        principals.sort_unstable();
        principals.dedup();
        for name in principals {
            asking.push(i);
            names.push(name);
        }
    }
    let rows = sql::query(
        client,
        "WITH q AS (SELECT * FROM unnest($1::int4[], $2::text[], $3::uuid[], $4::text[]) \
                        AS q(i, object_type, object_id, namespace)), \
              p AS (SELECT * FROM unnest($5::int4[], $6::text[]) AS p(i, name)) \
         SELECT q.i, 'owner' AS kind, o.owner AS who, NULL::text AS level \
             FROM q JOIN ownership o ON o.object_type = q.object_type AND o.object_id = q.object_id \
         UNION ALL \
         SELECT q.i, 'namespace_owner', o.owner, NULL::text \
             FROM q JOIN namespaces n ON n.name = q.namespace \
             JOIN ownership o ON o.object_type = 'namespace' AND o.object_id = n.id \
         UNION ALL \
         SELECT q.i, 'share', s.shared_with, s.access_level \
             FROM q JOIN p ON p.i = q.i \
             JOIN shares s ON s.object_type = q.object_type AND s.object_id = q.object_id \
                          AND s.shared_with = p.name \
         UNION ALL \
         SELECT q.i, 'share', s.shared_with, s.access_level \
             FROM q JOIN p ON p.i = q.i \
             JOIN namespaces n ON n.name = q.namespace \
             JOIN shares s ON s.object_type = 'namespace' AND s.object_id = n.id AND s.shared_with = p.name \
         UNION ALL \
         SELECT -1, 'generation', generation::text, NULL FROM access_generation",
        &[&index, &types, &ids, &namespaces, &asking, &names],
    )
    .await?;
    let mut answers: Vec<Grants> = vec![Grants::default(); questions.len()];
    let mut generation = None;
    for row in &rows {
        let i: i32 = row.try_get("i")?;
        if i == -1 {
            let text: &str = row.try_get("who")?;
            let value = text.parse().map_err(|e| DaoError::corrupt("generation", e))?;
            generation = Some(AccessGeneration(value));
            continue;
        }
        let answer = usize::try_from(i)
            .ok()
            .and_then(|i| answers.get_mut(i))
            .ok_or_else(|| DaoError::Corrupt {
                column: "i",
                source: "an answer to no question".into(),
            })?;
        match row.try_get::<_, &str>("kind")? {
            "owner" => answer.owner = Some(row.try_get("who")?),
            "namespace_owner" => answer.namespace_owner = Some(row.try_get("who")?),
            _ => answer
                .shares
                .push((row.try_get("who")?, sql::parse_column(row, "level")?)),
        }
    }
    let generation = generation.ok_or_else(|| DaoError::Corrupt {
        column: "generation",
        source: "the access_generation row is missing".into(),
    })?;
    Ok((generation, answers))
}

/// What [`grants`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// The object's owner (its `ownership` row).
    pub owner: Option<String>,
    /// The owner of the namespace holding it.
    pub namespace_owner: Option<String>,
    /// The shares naming the caller, on the object or its namespace.
    pub shares: Vec<(String, AccessLevel)>,
}

/// The share with id `id`.
pub async fn get_share(client: &impl GenericClient, id: Uuid) -> Result<Share, DaoError> {
    let row = sql::query_one(
        client,
        "share",
        &format!("SELECT {SHARE_COLUMNS} FROM shares WHERE id = $1"),
        &[&id],
    )
    .await?;
    share_from_row(&row)
}

/// Removes the share with id `id`; `NotFound { share }` when there is none.
pub async fn delete_share(client: &impl GenericClient, id: Uuid) -> Result<(), DaoError> {
    let deleted = sql::execute(client, "DELETE FROM shares WHERE id = $1", &[&id])
        .await
        .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "share" });
    }
    Ok(())
}
