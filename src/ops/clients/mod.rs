//! One file per backend client, each made on first use and cached in the [`Target`]: a script
//! that only touches Docker never connects to PostgreSQL, and an unreachable backend is a clean
//! error at the call that needs it.
//!
//! Adding a backend: a file here implementing [`Connect`], and one field in the Target.
//!
//! [`Target`]: crate::ops::Target

pub mod docker;
pub mod postgres;
pub mod qdrant;
pub mod redis;

use std::time::Duration;

use tokio::sync::OnceCell;

use crate::config::Settings;
use crate::ops::error::{Backend, ErrorKind, OpError};

/// How long a first connection may take before the call fails as `timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend client: how to name it and how to connect.
pub trait Connect: Sized {
    const NAME: &'static str;

    /// The address operators know it by, secrets masked.
    fn address(settings: &Settings) -> String;

    /// Connects, making one direct attempt so that the error names the real cause (a pool
    /// retrying until its own timeout reports only "timed out").
    fn connect(
        settings: &Settings,
        backend: &Backend,
    ) -> impl Future<Output = Result<Self, OpError>>;
}

/// A client made on first use and kept for the run.
pub struct Lazy<C> {
    backend: Backend,
    cell: OnceCell<C>,
}

impl<C: Connect> Lazy<C> {
    pub fn new(settings: &Settings) -> Lazy<C> {
        Lazy {
            backend: Backend {
                name: C::NAME,
                address: C::address(settings),
            },
            cell: OnceCell::new(),
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub async fn get(&self, settings: &Settings) -> Result<&C, OpError> {
        self.cell
            .get_or_try_init(|| async {
                tokio::time::timeout(CONNECT_TIMEOUT, C::connect(settings, &self.backend))
                    .await
                    .map_err(|_| {
                        OpError::backend(
                            &self.backend,
                            ErrorKind::Timeout,
                            format!(
                                "no answer within {}",
                                crate::duration::format(CONNECT_TIMEOUT)
                            ),
                        )
                    })?
            })
            .await
    }
}
