//! An agent's local pools: the plain one, and one made with the initializer
//! that a job's `map_with` chunks name (the last one kept: a job's calls
//! use one initializer at a time, and each pool holds a worker per CPU);
//! and the shared data chunks name, fetched once from the job's store and
//! kept while chunks use it (dropped after [`DATA_IDLE`] unused).

use crate::job::{Target, data_name};
use async_nats::jetstream::object_store::ObjectStore;
use async_nats::jetstream::stream;
use brood::Pool;
use brood::remote::SharedData;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

/// Shared data no chunk has used for this long is dropped.
const DATA_IDLE: Duration = Duration::from_secs(600);

pub(crate) struct Pools {
    plain: Arc<Pool>,
    workers: usize,
    inits: stream::Stream,
    target: Target,
    /// The pool of the last initializer asked for, by its key.
    with_init: Mutex<Option<(String, Arc<Pool>)>>,
    data_store: ObjectStore,
    /// Shared data fetched, by id, and when a chunk last used it.
    data: Mutex<HashMap<u64, (SharedData, Instant)>>,
}

impl Pools {
    /// Workers in each local pool.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    pub(crate) fn new(
        plain: Arc<Pool>,
        workers: usize,
        inits: stream::Stream,
        data_store: ObjectStore,
        target: Target,
    ) -> Pools {
        Pools {
            plain,
            workers,
            inits,
            target,
            with_init: Mutex::new(None),
            data_store,
            data: Mutex::new(HashMap::new()),
        }
    }

    /// The shared data of these ids, fetched from the job's store the
    /// first time; or why one cannot be had.
    pub(crate) async fn shared(&self, ids: &[u64]) -> Result<Vec<SharedData>, String> {
        let mut data = self.data.lock().await;
        data.retain(|_, (_, used)| used.elapsed() < DATA_IDLE);
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some((d, used)) = data.get_mut(&id) {
                *used = Instant::now();
                out.push(d.clone());
                continue;
            }
            let missing = |e: &dyn std::fmt::Display| {
                format!(
                    "its shared data {} is not on the server: {e}",
                    data_name(id)
                )
            };
            let mut object = self
                .data_store
                .get(data_name(id))
                .await
                .map_err(|e| missing(&e))?;
            let mut bytes = Vec::new();
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| missing(&e))?;
            let d = SharedData::new(id, &bytes)
                .map_err(|e| format!("cannot hold shared data of {} bytes: {e}", bytes.len()))?;
            data.insert(id, (d.clone(), Instant::now()));
            out.push(d);
        }
        Ok(out)
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
