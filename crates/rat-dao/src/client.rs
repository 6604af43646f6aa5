//! What every repository function takes: a pooled connection or a
//! transaction ([`GenericClient`]), and the types of the values bound to its
//! statements ([`SqlParam`]), so that a statement can be sent unnamed with
//! its parameter types declared (through a transaction pooler, [`crate::sql`]).

use time::OffsetDateTime;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

/// A pooled connection or a transaction. Every repository function takes
/// `&impl GenericClient`, so the service layer decides where transactions
/// begin and end. Implemented for deadpool's client and transaction only.
pub trait GenericClient: deadpool_postgres::GenericClient + Sync {
    /// The connection as tokio-postgres sees it, for unnamed statements.
    #[doc(hidden)]
    fn driver(&self) -> Driver<'_>;
}

/// The tokio-postgres side of a [`GenericClient`].
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum Driver<'a> {
    /// A connection outside any transaction.
    Client(&'a tokio_postgres::Client),
    /// A transaction.
    Transaction(&'a tokio_postgres::Transaction<'a>),
}

impl GenericClient for deadpool_postgres::Client {
    fn driver(&self) -> Driver<'_> {
        Driver::Client(self)
    }
}

impl GenericClient for deadpool_postgres::Transaction<'_> {
    fn driver(&self) -> Driver<'_> {
        Driver::Transaction(self)
    }
}

impl Driver<'_> {
    /// Runs `sql` as an unnamed statement with its parameter types declared:
    /// one round trip, nothing left on the server session afterwards.
    pub(crate) async fn query_typed(
        self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        match self {
            Driver::Client(client) => client.query_typed(sql, params).await,
            Driver::Transaction(transaction) => transaction.query_typed(sql, params).await,
        }
    }

    /// Like [`Driver::query_typed`], for a statement returning no rows.
    pub(crate) async fn execute_typed(
        self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<u64, tokio_postgres::Error> {
        match self {
            Driver::Client(client) => client.execute_typed(sql, params).await,
            Driver::Transaction(transaction) => transaction.execute_typed(sql, params).await,
        }
    }
}

/// A value bound to a statement, which knows its Postgres type.
pub trait SqlParam: ToSql + Sync {
    /// The Postgres type it is sent as.
    fn sql_type(&self) -> Type;
    /// Itself as the driver takes it.
    fn as_to_sql(&self) -> &(dyn ToSql + Sync);
}

/// The Postgres type of a Rust type sent as a parameter.
pub trait SqlType {
    /// The type.
    const TYPE: Type;
}

/// The Postgres array type of a Rust type sent as array elements.
pub trait SqlArrayElement {
    /// The array type.
    const ARRAY: Type;
}

impl<T: SqlType + ToSql + Sync> SqlParam for T {
    fn sql_type(&self) -> Type {
        T::TYPE
    }

    fn as_to_sql(&self) -> &(dyn ToSql + Sync) {
        self
    }
}

macro_rules! sql_types {
    ($($rust:ty => $scalar:ident, $array:ident;)*) => {
        $(
            impl SqlType for $rust {
                const TYPE: Type = Type::$scalar;
            }
            impl SqlArrayElement for $rust {
                const ARRAY: Type = Type::$array;
            }
        )*
    };
}

sql_types! {
    bool => BOOL, BOOL_ARRAY;
    i16 => INT2, INT2_ARRAY;
    i32 => INT4, INT4_ARRAY;
    i64 => INT8, INT8_ARRAY;
    f32 => FLOAT4, FLOAT4_ARRAY;
    f64 => FLOAT8, FLOAT8_ARRAY;
    String => TEXT, TEXT_ARRAY;
    &str => TEXT, TEXT_ARRAY;
    Uuid => UUID, UUID_ARRAY;
    OffsetDateTime => TIMESTAMPTZ, TIMESTAMPTZ_ARRAY;
    serde_json::Value => JSONB, JSONB_ARRAY;
}

impl<T> SqlType for Json<T> {
    const TYPE: Type = Type::JSONB;
}

impl SqlType for Vec<u8> {
    const TYPE: Type = Type::BYTEA;
}

impl SqlType for &[u8] {
    const TYPE: Type = Type::BYTEA;
}

impl<const N: usize> SqlType for [u8; N] {
    const TYPE: Type = Type::BYTEA;
}

impl<T: SqlType> SqlType for Option<T> {
    const TYPE: Type = T::TYPE;
}

impl<T: SqlArrayElement> SqlArrayElement for Option<T> {
    const ARRAY: Type = T::ARRAY;
}

impl<T: SqlArrayElement> SqlType for Vec<T> {
    const TYPE: Type = T::ARRAY;
}

impl<T: SqlArrayElement> SqlType for &[T] {
    const TYPE: Type = T::ARRAY;
}

impl<T: SqlType + ?Sized> SqlType for &T {
    const TYPE: Type = T::TYPE;
}

sql_types! {
    rat_domain::PipelineId => UUID, UUID_ARRAY;
    rat_domain::RunId => UUID, UUID_ARRAY;
    rat_domain::ScheduleId => UUID, UUID_ARRAY;
    rat_domain::TriggerId => UUID, UUID_ARRAY;
    rat_domain::QualityTestId => UUID, UUID_ARRAY;
    rat_domain::ZoneId => UUID, UUID_ARRAY;
    rat_domain::VersionNumber => INT4, INT4_ARRAY;
}
