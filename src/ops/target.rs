//! One target deployment: its settings, the run's flags and its backend clients, each made on
//! first use and cached (see [`clients`](crate::ops::clients)).

use sqlx::postgres::PgPool;

use crate::bridge::Bridge;
use crate::config::Settings;
use crate::ops::clients::{Lazy, postgres::Postgres, qdrant::Qdrant};
use crate::ops::destructive::Audit;
use crate::ops::error::{Backend, OpError};

/// The run's global flags that operations honour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// --dry-run: destructive operations report what they would do and change nothing.
    pub dry_run: bool,
    /// --yes: confirmations are taken as given.
    pub yes: bool,
}

pub struct Target {
    pub settings: Settings,
    pub bridge: Bridge,
    pub flags: Flags,
    /// Where destructive operations record what they did.
    pub audit: Audit,
    postgres: Lazy<Postgres>,
    qdrant: Lazy<Qdrant>,
}

impl Target {
    pub fn new(settings: Settings, bridge: Bridge, flags: Flags) -> Target {
        Target {
            postgres: Lazy::new(&settings),
            qdrant: Lazy::new(&settings),
            settings,
            bridge,
            flags,
            audit: Audit::default(),
        }
    }

    pub fn pg_backend(&self) -> &Backend {
        self.postgres.backend()
    }

    /// Turns a sqlx error into an operation error naming this target's PostgreSQL.
    pub fn pg_err(&self) -> impl Fn(sqlx::Error) -> OpError + '_ {
        crate::ops::clients::postgres::error(self.pg_backend())
    }

    /// The PostgreSQL pool, connected on first use.
    pub async fn pg(&self) -> Result<&PgPool, OpError> {
        Ok(&self.postgres.get(&self.settings).await?.pool)
    }

    pub fn qdrant_backend(&self) -> &Backend {
        self.qdrant.backend()
    }

    /// Turns a qdrant-client error into an operation error naming this target's Qdrant.
    pub fn qdrant_err(&self) -> impl Fn(qdrant_client::QdrantError) -> OpError + '_ {
        crate::ops::clients::qdrant::error(self.qdrant_backend())
    }

    /// The Qdrant client, connected (and its version checked) on first use.
    pub async fn qdrant(&self) -> Result<&Qdrant, OpError> {
        self.qdrant.get(&self.settings).await
    }
}
