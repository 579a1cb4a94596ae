//! State shared by every connection of a running server.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use datastore::chunker::ChunkerParams;
use datastore::digest::ZeroDigests;
use datastore::snapshot::BackupGroup;
use datastore::store::DataStore;

use crate::config::{ConfigDir, TASKS_DIR};
use crate::error::ApiError;
use crate::tasks::TaskRegistry;

pub struct ServerState {
    pub config: ConfigDir,
    /// Every long operation (backup session, GC, verify, prune) runs as a task.
    pub tasks: Arc<TaskRegistry>,
    pub zeros: Arc<ZeroDigests>,
    /// Groups with a running backup session, per store: one writer per group.
    active_groups: Mutex<HashSet<(String, BackupGroup)>>,
    /// Bytes of request bodies received by backup sessions since start.
    pub bytes_received: AtomicU64,
    /// Failed password logins per source address.
    pub login_limiter: crate::access::rate_limit::LoginLimiter,
    /// The job scheduler, once `serve` started it.
    pub scheduler: OnceLock<Arc<crate::jobs::Scheduler>>,
}

/// A datastore opened for one request or session, with its configured chunker.
pub struct OpenStore {
    pub name: String,
    pub store: Arc<DataStore>,
    pub chunker: ChunkerParams,
    /// Seconds an unreferenced chunk survives GC.
    pub gc_grace_secs: i64,
}

impl ServerState {
    /// State of a server on `config`; opens the task registry (which marks tasks that
    /// were running when a previous server process died as `unknown`).
    pub fn new(config: ConfigDir) -> anyhow::Result<Self> {
        let tasks = Arc::new(TaskRegistry::open(&config.path(TASKS_DIR))?);
        Ok(Self {
            config,
            tasks,
            zeros: Arc::new(ZeroDigests::new()),
            active_groups: Mutex::new(HashSet::new()),
            bytes_received: AtomicU64::new(0),
            login_limiter: crate::access::rate_limit::LoginLimiter::default(),
            scheduler: OnceLock::new(),
        })
    }

    /// Opens a configured datastore by name.
    pub fn open_store(&self, name: &str) -> Result<OpenStore, ApiError> {
        datastore::names::validate_store_name(name)?;
        let config = self
            .config
            .datastore(name)?
            .ok_or_else(|| ApiError::NotFound(format!("no datastore named '{name}'")))?;
        let store = DataStore::open(&config.path).map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context(format!("opening datastore '{name}'")))
        })?;
        let chunker = ChunkerParams::new(config.chunk_size).map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("datastore chunk size"))
        })?;
        Ok(OpenStore {
            name: name.to_string(),
            store: Arc::new(store),
            chunker,
            gc_grace_secs: config
                .gc_grace_seconds
                .unwrap_or(datastore::gc::DEFAULT_GRACE_SECS),
        })
    }

    /// Starts the job scheduler (once): it runs due jobs as tasks every second until the
    /// process ends.
    pub fn start_scheduler(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let start_job: crate::jobs::StartJob = Arc::new(move |job| {
            let state = weak
                .upgrade()
                .ok_or_else(|| anyhow::anyhow!("the server is stopping"))?;
            crate::maintenance::start_job(&state, job)
        });
        let scheduler = Arc::new(crate::jobs::Scheduler::new(
            self.config.clone(),
            Arc::clone(&self.tasks),
            start_job,
        ));
        if self.scheduler.set(Arc::clone(&scheduler)).is_ok() {
            tokio::spawn(scheduler.run());
        }
    }

    /// The running scheduler.
    pub fn scheduler(&self) -> Result<&Arc<crate::jobs::Scheduler>, ApiError> {
        self.scheduler
            .get()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the job scheduler is not running")))
    }

    /// Marks a group as being written; the guard releases it.
    pub fn lock_group(
        self: &Arc<Self>,
        store: &str,
        group: &BackupGroup,
    ) -> Result<GroupGuard, ApiError> {
        let key = (store.to_string(), group.clone());
        let mut active = self.active_groups.lock().unwrap_or_else(|e| e.into_inner());
        if !active.insert(key.clone()) {
            return Err(ApiError::Conflict(format!(
                "a backup of group {}/{} is already running",
                group.backup_type, group.backup_id
            )));
        }
        Ok(GroupGuard {
            state: Arc::clone(self),
            key,
        })
    }
}

/// Held while a backup session writes a group.
pub struct GroupGuard {
    state: Arc<ServerState>,
    key: (String, BackupGroup),
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let mut active = self
            .state
            .active_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        active.remove(&self.key);
    }
}
