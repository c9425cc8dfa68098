//! An agent's local pools: the plain one, and one made with the initializer
//! that a job's `map_with` chunks name (the last one kept: a job's calls
//! use one initializer at a time, and each pool holds a worker per CPU).

use crate::job::Target;
use async_nats::jetstream::stream;
use brood::Pool;
use std::sync::Arc;
use tokio::sync::Mutex;

pub(crate) struct Pools {
    plain: Arc<Pool>,
    workers: usize,
    inits: stream::Stream,
    target: Target,
    /// The pool of the last initializer asked for, by its key.
    with_init: Mutex<Option<(String, Arc<Pool>)>>,
}

impl Pools {
    pub(crate) fn new(
        plain: Arc<Pool>,
        workers: usize,
        inits: stream::Stream,
        target: Target,
    ) -> Pools {
        Pools {
            plain,
            workers,
            inits,
            target,
            with_init: Mutex::new(None),
        }
    }

    /// The pool for a chunk that needs the initializer `key` (or none):
    /// made, with its workers initialised, the first time; or why it cannot
    /// be (the initializer is missing, of another build, or failed), which
    /// answers the chunk's items.
    pub(crate) async fn get(&self, key: Option<&str>) -> Result<Arc<Pool>, String> {
        let Some(key) = key else {
            return Ok(Arc::clone(&self.plain));
        };
        let mut current = self.with_init.lock().await;
        if let Some((k, pool)) = current.as_ref()
            && k == key
        {
            return Ok(Arc::clone(pool));
        }
        let bytes = self
            .inits
            .get_last_raw_message_by_subject(&self.target.init_subject(key))
            .await
            .map_err(|e| format!("the job's initializer {key} is not on the server: {e}"))?
            .payload;
        let workers = self.workers;
        let made = tokio::task::spawn_blocking(move || {
            let mut builder = Pool::builder(workers);
            builder
                .initializer_encoded(&bytes)
                .map_err(|e| e.to_string())?;
            builder.build().map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("making the pool with the initializer: {e}"))??;
        let pool = Arc::new(made);
        // The pool it replaces ends once its last chunk is done with it.
        *current = Some((key.to_string(), Arc::clone(&pool)));
        Ok(pool)
    }
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("workers", &self.workers)
            .finish()
    }
}
