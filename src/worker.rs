//! Workers: one OS thread each, with a single-threaded runtime, its own SO_REUSEPORT
//! listener, its own sessions and its own backend links. Nothing on the request path is
//! shared between workers except the read-mostly [`Proxy`] (config, auth table, topology
//! cell), so a request never waits for a lock another worker holds.

use crate::auth::AuthTable;
use crate::backend::{LinkPool, LinkSettings};
use crate::config::{Cidr, Config};
use crate::hold::HoldQueue;
use crate::metrics::{Metrics, Stats, WorkerStats};
use crate::routing::{ReadPriorities, Sharding};
use crate::session::ClientShared;
use crate::topology::{LocalTopology, TopologyCell};
use parking_lot::RwLock;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A value read often and replaced rarely (config reload): readers clone an `Arc`.
#[derive(Debug)]
pub struct Swappable<T>(RwLock<Arc<T>>);

impl<T> Swappable<T> {
    pub fn new(v: T) -> Swappable<T> {
        Swappable(RwLock::new(Arc::new(v)))
    }
    pub fn load(&self) -> Arc<T> {
        self.0.read().clone()
    }
    pub fn store(&self, v: T) {
        *self.0.write() = Arc::new(v);
    }
}

/// What every worker shares: read-mostly state and counters.
pub struct Proxy {
    pub config: Config,
    pub auth: Swappable<AuthTable>,
    /// Read priorities (master, static replica, dynamic replica), changeable at run time;
    /// plain atomics so that reading them costs no shared reference count.
    priorities: [std::sync::atomic::AtomicU32; 3],
    /// Client networks allowed to connect; empty = everyone.
    pub allow: Swappable<Vec<Cidr>>,
    pub topology: Arc<TopologyCell>,
    pub sharding: Sharding,
    pub stats: Stats,
    /// Per-worker counters, the Prometheus registry and what INFO needs.
    pub metrics: Metrics,
    pub started: Instant,
    next_client_id: AtomicU64,
    /// Clients connected now, over all workers.
    pub clients: AtomicUsize,
    /// Set when the proxy stops accepting (SIGTERM).
    pub shutdown: watch::Sender<bool>,
    /// Limits a config reload may change.
    pub live: crate::limits::Live,
    /// Failed AUTHs per source address.
    pub auth_limiter: crate::limits::AuthLimiter,
    /// Set by `main` when the client port speaks TLS.
    pub client_tls: std::sync::OnceLock<crate::tls::ClientTls>,
    /// Set by `main` when backend links use TLS (`[sentinel_pool] tls`).
    pub backend_tls: std::sync::OnceLock<Arc<crate::backend_tls::BackendTls>>,
    /// Set by `main`: where to reload the config from.
    pub reloader: std::sync::OnceLock<crate::reload::Reloader>,
}

impl Proxy {
    pub fn new(config: Config, topology: Arc<TopologyCell>) -> Proxy {
        let auth = AuthTable::new(config.auth.as_deref());
        let priorities = ReadPriorities::new(&config.sentinel_pool);
        let sharding = Sharding::new(&config.sentinel_pool);
        Proxy {
            allow: Swappable::new(config.allow_cidrs()),
            auth: Swappable::new(auth),
            priorities: [
                std::sync::atomic::AtomicU32::new(priorities.master),
                std::sync::atomic::AtomicU32::new(priorities.static_replica),
                std::sync::atomic::AtomicU32::new(priorities.dynamic_replica),
            ],
            sharding,
            topology,
            stats: Stats::default(),
            metrics: Metrics::new(config.sentinel_pool.groups.len()),
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
            clients: AtomicUsize::new(0),
            shutdown: watch::channel(false).0,
            live: crate::limits::Live::new(&config),
            auth_limiter: crate::limits::AuthLimiter::default(),
            reloader: std::sync::OnceLock::new(),
            client_tls: std::sync::OnceLock::new(),
            backend_tls: std::sync::OnceLock::new(),
            config,
        }
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn priorities(&self) -> ReadPriorities {
        ReadPriorities {
            master: self.priorities[0].load(Ordering::Relaxed),
            static_replica: self.priorities[1].load(Ordering::Relaxed),
            dynamic_replica: self.priorities[2].load(Ordering::Relaxed),
        }
    }

    /// Changes the read priorities (CONFIG SET, reload).
    pub fn set_priorities(&self, p: ReadPriorities) {
        self.priorities[0].store(p.master, Ordering::Relaxed);
        self.priorities[1].store(p.static_replica, Ordering::Relaxed);
        self.priorities[2].store(p.dynamic_replica, Ordering::Relaxed);
    }

    fn link_settings(&self) -> LinkSettings {
        let pool = &self.config.sentinel_pool;
        LinkSettings {
            user: pool.user.clone(),
            password: pool.password.clone(),
            server_timeout: pool.server_timeout,
            server_failure_limit: pool.server_failure_limit,
            server_retry_timeout: pool.server_retry_timeout,
            keep_alive: pool.keep_alive,
            tls: self.backend_tls.get().cloned(),
        }
    }
}

/// One worker's state, shared by its sessions (single-threaded).
pub struct WorkerCtx {
    pub index: usize,
    pub proxy: Arc<Proxy>,
    pub topology: RefCell<LocalTopology>,
    pub links: LinkPool,
    /// Requests held during failovers.
    pub hold: Rc<HoldQueue>,
    /// This worker's counters (commands, latency, bytes, servers).
    pub stats: Arc<WorkerStats>,
    turn: Cell<usize>,
    /// Live sessions, for draining at shutdown.
    sessions: RefCell<Vec<Weak<ClientShared>>>,
}

impl WorkerCtx {
    /// Advances the read rotation among servers of equal priority.
    pub fn next_turn(&self) -> usize {
        let t = self.turn.get().wrapping_add(1);
        self.turn.set(t);
        t
    }

    /// Requests of this worker's clients still waiting for a backend.
    pub fn pending_requests(&self) -> usize {
        let held = self.hold.len();
        let mut sessions = self.sessions.borrow_mut();
        sessions.retain(|s| s.strong_count() > 0);
        sessions
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.pending())
            .sum::<usize>()
            + held
    }
}

/// Runs `future` to completion on this thread, in a single-threaded runtime with a local
/// task set (workers and discovery each own one thread this way).
pub fn run_local<F: std::future::Future>(future: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(tokio::task::LocalSet::new().block_on(&rt, future))
}

/// Binds a listener with SO_REUSEPORT so every worker can accept on the same address.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Starts `worker_threads` workers. Returns once every worker listens (or the first
/// bind error).
pub fn start_workers(proxy: Arc<Proxy>) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let n = proxy.config.worker_threads.max(1);
    let mut handles = Vec::with_capacity(n);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for index in 0..n {
        let listener = bind_reuseport(proxy.config.bind)?;
        let proxy = proxy.clone();
        let ready = ready_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("redmux-worker-{index}"))
            .spawn(move || {
                let failed = ready.clone();
                let ran = run_local(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    run_worker(index, proxy, listener).await;
                });
                if let Err(e) = ran {
                    let _ = failed.send(Err(e));
                }
            })?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("a worker thread died at start")),
        }
    }
    Ok(handles)
}

/// Longest a worker waits at shutdown for in-flight requests.
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

async fn run_worker(index: usize, proxy: Arc<Proxy>, listener: TcpListener) {
    let hold = HoldQueue::new();
    let stats = proxy.metrics.register_worker();
    let ctx = Rc::new(WorkerCtx {
        index,
        topology: RefCell::new(LocalTopology::new(proxy.topology.clone())),
        links: LinkPool::new(proxy.link_settings(), hold.clone()).with_stats(stats.clone()),
        hold: hold.clone(),
        stats,
        turn: Cell::new(index),
        sessions: RefCell::new(Vec::new()),
        proxy: proxy.clone(),
    });
    tokio::task::spawn_local(hold.run(ctx.clone()));
    tokio::task::spawn_local(crate::metrics::publish_worker(ctx.clone()));
    let mut shutdown = proxy.shutdown.subscribe();
    let mut topo_epoch = 0;
    let refused_log = Rc::new(Cell::new(None));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        proxy.stats.accepted.fetch_add(1, Ordering::Relaxed);
        // With the PROXY protocol the allow-list checks the address in the header.
        let proxied = proxy.config.proxy_protocol;
        if !proxied && !admit(&proxy, &peer, &refused_log) {
            continue;
        }
        // Drop links to servers that left the topology (checked per accept, not per request).
        let epoch = proxy.topology.epoch();
        if epoch != topo_epoch {
            topo_epoch = epoch;
            let topo = proxy.topology.load();
            ctx.links.retain_servers(|a| {
                topo.groups.iter().any(|g| {
                    g.master.as_ref() == Some(a) || g.replicas.iter().any(|r| &r.addr == a)
                })
            });
        }
        let ctx2 = ctx.clone();
        let over_limit = {
            let max = proxy.live.max_clients();
            let now = proxy.clients.fetch_add(1, Ordering::Relaxed) + 1;
            max > 0 && now > max
        };
        let refused_log = refused_log.clone();
        tokio::task::spawn_local(async move {
            let mut stream = stream;
            let peer = if proxied {
                match Box::pin(crate::proxy_protocol::read_header(&mut stream)).await {
                    Ok(crate::proxy_protocol::Header::Client(real)) => Some(real),
                    Ok(crate::proxy_protocol::Header::Local) => Some(peer),
                    Err(why) => {
                        tracing::debug!(client = %peer, why, "connection without a valid PROXY header closed");
                        None
                    }
                }
                .filter(|real| admit(&ctx2.proxy, real, &refused_log))
            } else {
                Some(peer)
            };
            match peer {
                None => {}
                Some(_) if over_limit => refuse_over_limit(stream).await,
                Some(peer) => match ctx2.proxy.client_tls.get() {
                    Some(tls) => {
                        Box::pin(crate::session::run_tls(
                            ctx2.clone(),
                            tls.acceptor(),
                            stream,
                            peer.to_string(),
                        ))
                        .await
                    }
                    None => crate::session::run(ctx2.clone(), stream, peer.to_string()).await,
                },
            }
            ctx2.proxy.clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drain(&ctx).await;
}

/// The allow-list check at accept time. A refused connection is closed without a
/// byte sent; it is counted, and logged at most once a second per worker.
fn admit(proxy: &Proxy, peer: &SocketAddr, last_log: &Cell<Option<Instant>>) -> bool {
    let allow = proxy.allow.load();
    if allow.is_empty() || allow.iter().any(|c| c.contains(peer.ip())) {
        return true;
    }
    proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    if last_log
        .get()
        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
    {
        last_log.set(Some(now));
        tracing::info!(client = %peer, "client refused: not in the allow list");
    }
    false
}

async fn refuse_over_limit(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.shutdown().await;
}

/// After the listener closed: waits (bounded) until no request is in flight.
async fn drain(ctx: &Rc<WorkerCtx>) {
    let deadline = Instant::now() + DRAIN_GRACE;
    while ctx.pending_requests() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl WorkerCtx {
    /// Registers a session for draining.
    pub fn register(&self, shared: &Rc<ClientShared>) {
        let mut sessions = self.sessions.borrow_mut();
        // Ended sessions leave a Weak that keeps their allocation: drop those whenever
        // the list would grow, so its size follows the live sessions (amortised O(1)).
        if sessions.len() == sessions.capacity() {
            sessions.retain(|s| s.strong_count() > 0);
        }
        sessions.push(Rc::downgrade(shared));
    }
}
