//! One target deployment: its settings, the run's flags and its backend clients, each made on
//! first use and cached (see [`clients`](crate::ops::clients)).

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;

use sqlx::postgres::PgPool;

use crate::bridge::Bridge;
use crate::config::Settings;
use crate::ops::clients::{Lazy, docker::Docker, postgres::Postgres, qdrant::Qdrant, redis::Redis};
use crate::ops::destructive::Audit;
use crate::ops::error::{Backend, OpError};

/// The run's global flags that operations honour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// --dry-run: destructive operations report what they would do and change nothing.
    pub dry_run: bool,
    /// --yes: confirmations are taken as given.
    pub yes: bool,
    /// --json: stdout holds one JSON document, so nothing else may write to it.
    pub json: bool,
}

pub struct Target {
    /// The named target (`--target prod`), or None for the configuration's top level.
    pub name: Option<String>,
    pub settings: Settings,
    pub bridge: Bridge,
    pub flags: Flags,
    /// Where destructive operations record what they did.
    pub audit: Audit,
    postgres: Lazy<Postgres>,
    docker: Lazy<Docker>,
    redis: Lazy<Redis>,
    qdrant: Lazy<Qdrant>,
    /// Whether the bridge knows how to cancel this target's PostgreSQL statements.
    pg_cancel_hook: std::sync::Once,
    /// What a domain keeps for the rest of the run (integrity's last check).
    pub state: RunState,
}

/// Per-run state of the domains, one value per type: each domain keeps its own type private,
/// so none can read or overwrite another's, and this file needs to know none of them.
#[derive(Default)]
pub struct RunState(RefCell<HashMap<TypeId, Box<dyn Any>>>);

impl RunState {
    /// Keeps `value` for the rest of the run, replacing the last one of its type.
    pub fn set<T: 'static>(&self, value: T) {
        self.0
            .borrow_mut()
            .insert(TypeId::of::<T>(), Box::new(value));
    }

    /// Whether a value of this type was kept.
    pub fn has<T: 'static>(&self) -> bool {
        self.0.borrow().contains_key(&TypeId::of::<T>())
    }

    /// `f` of the kept value of this type, if any (borrowed: `f` must not set state).
    pub fn with<T: 'static, R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let map = self.0.borrow();
        f(map
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<T>()))
    }
}

impl Target {
    pub fn new(settings: Settings, bridge: Bridge, flags: Flags) -> Target {
        Target {
            name: settings.target_name().map(str::to_string),
            postgres: Lazy::new(&settings),
            docker: Lazy::new(&settings),
            redis: Lazy::new(&settings),
            qdrant: Lazy::new(&settings),
            settings,
            bridge,
            flags,
            audit: Audit::default(),
            pg_cancel_hook: std::sync::Once::new(),
            state: RunState::default(),
        }
    }

    /// The target's name as labels show it: its name, or `default`.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("default")
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
        let pg = self.postgres.get(&self.settings).await?;
        self.pg_cancel_hook.call_once(|| {
            // Weak: a hook must not keep a dropped target's pool alive.
            let backends = std::sync::Arc::downgrade(&pg.backends);
            self.bridge.on_cancel(Box::new(move || {
                let backends = backends.upgrade();
                Box::pin(async move {
                    if let Some(backends) = backends {
                        backends.cancel_active().await;
                    }
                })
            }));
        });
        Ok(&pg.pool)
    }

    pub fn docker_backend(&self) -> &Backend {
        self.docker.backend()
    }

    /// Turns a bollard error into an operation error naming this target's Docker Engine.
    pub fn docker_err(&self) -> impl Fn(bollard::errors::Error) -> OpError + '_ {
        crate::ops::clients::docker::error(self.docker_backend())
    }

    /// The Docker Engine client, connected (API version negotiated) on first use.
    pub async fn docker(&self) -> Result<&Docker, OpError> {
        self.docker.get(&self.settings).await
    }

    pub fn redis_backend(&self) -> &Backend {
        self.redis.backend()
    }

    /// Turns a redis error into an operation error naming this target's Redis.
    pub fn redis_err(&self) -> impl Fn(::redis::RedisError) -> OpError + '_ {
        crate::ops::clients::redis::error(self.redis_backend())
    }

    /// The Redis client, connected on first use.
    pub async fn redis(&self) -> Result<&Redis, OpError> {
        self.redis.get(&self.settings).await
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

#[cfg(test)]
mod tests {
    use super::RunState;

    #[test]
    fn run_state_keeps_one_value_per_type_apart() {
        struct Last(u32);
        struct Other(&'static str);
        let state = RunState::default();
        assert!(!state.has::<Last>());
        assert_eq!(state.with(|l: Option<&Last>| l.map(|l| l.0)), None);
        state.set(Last(1));
        state.set(Other("x"));
        state.set(Last(2));
        assert!(state.has::<Last>());
        assert_eq!(state.with(|l: Option<&Last>| l.map(|l| l.0)), Some(2));
        assert_eq!(state.with(|o: Option<&Other>| o.map(|o| o.0)), Some("x"));
        // Another run's state is its own.
        assert!(!RunState::default().has::<Last>());
    }
}
