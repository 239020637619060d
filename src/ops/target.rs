//! One target deployment: its settings and its backend clients, each made on first use and
//! cached, so a script that never touches a backend never connects to it.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tokio::sync::OnceCell;

use crate::bridge::Bridge;
use crate::config::{Settings, redact_url};
use crate::ops::support::OpError;

/// The run's global flags that operations honour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// --dry-run: destructive operations report what they would do and change nothing.
    pub dry_run: bool,
    /// --yes: confirmations are taken as given.
    pub yes: bool,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Target {
    pub settings: Settings,
    pub bridge: Bridge,
    pub flags: Flags,
    pg: OnceCell<PgPool>,
}

impl Target {
    pub fn new(settings: Settings, bridge: Bridge, flags: Flags) -> Target {
        Target {
            settings,
            bridge,
            flags,
            pg: OnceCell::new(),
        }
    }

    /// The PostgreSQL address with its password redacted, for messages.
    pub fn pg_address(&self) -> String {
        redact_url(self.settings.get("postgres.url"))
    }

    /// The PostgreSQL pool, connected on first use.
    pub async fn pg(&self) -> Result<&PgPool, OpError> {
        self.pg
            .get_or_try_init(|| async {
                let url = self.settings.get("postgres.url");
                let options: PgConnectOptions = url
                    .parse()
                    .map_err(|e| OpError::backend("postgres", self.pg_address(), e))?;
                let options = options.application_name("opsh");
                // The pool retries a failing connect until its timeout and then reports only
                // "timed out"; one direct attempt first gives the operator the real cause.
                let first =
                    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
                        .await
                        .map_err(|_| {
                            OpError::backend(
                                "postgres",
                                self.pg_address(),
                                format!("no answer within {CONNECT_TIMEOUT:?}"),
                            )
                        })?
                        .map_err(|e| OpError::backend("postgres", self.pg_address(), e))?;
                let _ = first.close().await;
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(|e| OpError::backend("postgres", self.pg_address(), e))
            })
            .await
    }
}
