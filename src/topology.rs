//! The topology snapshot: which server is each group's master and which replicas may
//! serve reads, as discovery last saw it.
//!
//! A snapshot is immutable. Discovery builds a new one and publishes it; each worker keeps
//! its own `Arc` to the current snapshot and swaps it when the published epoch moves, so
//! the request path reads the topology without taking a lock.

use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// `host:port` of a Redis server, shared cheaply.
pub type ServerAddr = Arc<str>;

/// How a server takes part in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Master,
    /// A replica listed in the config (`servers` of a group).
    StaticReplica,
    /// A replica Sentinel reported.
    DynamicReplica,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::StaticReplica => "static_replica",
            Role::DynamicReplica => "dynamic_replica",
        }
    }
}

/// A replica that may serve reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub addr: ServerAddr,
    pub role: Role,
}

/// Writes of a group are held while its failover runs (see `discovery`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverHold {
    /// When the failover started; writes are held at most `discovery::HOLD_LIMIT` past it.
    pub since: Instant,
}

/// One master group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// The master every write goes to; `None` until a Sentinel names one.
    pub master: Option<ServerAddr>,
    pub replicas: Vec<Replica>,
    /// Set while a failover of this group is in progress.
    pub hold: Option<FailoverHold>,
}

/// One immutable view of every group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Increases with every published snapshot.
    pub epoch: u64,
    pub groups: Vec<Group>,
}

impl Topology {
    /// A snapshot with the groups named but nothing known yet.
    pub fn unknown(names: &[String]) -> Topology {
        Topology {
            epoch: 0,
            groups: names
                .iter()
                .map(|n| Group {
                    name: n.clone(),
                    master: None,
                    replicas: Vec::new(),
                    hold: None,
                })
                .collect(),
        }
    }
}

/// Where discovery publishes snapshots and workers pick them up.
#[derive(Debug)]
pub struct TopologyCell {
    epoch: AtomicU64,
    current: RwLock<Arc<Topology>>,
}

impl TopologyCell {
    pub fn new(initial: Topology) -> TopologyCell {
        TopologyCell {
            epoch: AtomicU64::new(initial.epoch),
            current: RwLock::new(Arc::new(initial)),
        }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Topology> {
        self.current.read().clone()
    }

    /// Publishes a new snapshot; its epoch is set to one more than the current one.
    pub fn publish(&self, mut next: Topology) -> Arc<Topology> {
        let mut cur = self.current.write();
        next.epoch = cur.epoch + 1;
        let next = Arc::new(next);
        *cur = next.clone();
        self.epoch.store(next.epoch, Ordering::Release);
        next
    }

    /// The epoch of the current snapshot (one atomic load).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}

/// A worker's cached view of the current snapshot.
#[derive(Debug)]
pub struct LocalTopology {
    cell: Arc<TopologyCell>,
    cached: Arc<Topology>,
}

impl LocalTopology {
    pub fn new(cell: Arc<TopologyCell>) -> LocalTopology {
        let cached = cell.load();
        LocalTopology { cell, cached }
    }

    /// The current snapshot; costs one atomic load unless it changed.
    pub fn get(&mut self) -> &Arc<Topology> {
        if self.cell.epoch() != self.cached.epoch {
            self.cached = self.cell.load();
        }
        &self.cached
    }

    pub fn cell(&self) -> &Arc<TopologyCell> {
        &self.cell
    }
}
