//! Discovery: asks the Sentinels which server is each group's master and which replicas
//! may serve reads, and publishes a new topology snapshot when that changes.
//!
//! It polls every Sentinel each `refresh_interval` and follows what the majority of the
//! Sentinels that answered report, so one stale Sentinel never moves traffic. It also
//! subscribes to every Sentinel's events, so a failover (`+switch-master`) or a server
//! going down or up is followed at once rather than at the next poll. It runs on its own
//! thread and never touches a backend link: workers pick the new snapshot up themselves.

use crate::backend::read_replies;
use crate::backend_tls::{BackendStream, BackendTls};
use crate::config::SentinelPoolConfig;
use crate::metrics::DiscoveryStats;
use crate::protocol::{encode_request, Value};
use crate::topology::{FailoverHold, Group, Replica, Role, ServerAddr, Topology, TopologyCell};
use bytes::BytesMut;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How long one Sentinel may take to answer a refresh.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an event-announced master outranks polls that still name the old one.
const ANNOUNCED_WINS_FOR: Duration = Duration::from_secs(30);
/// Pause before re-subscribing to a Sentinel whose connection broke.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);
/// Pause before trying again a Sentinel that answered the subscription with an error.
const RESUBSCRIBE_REFUSED_DELAY: Duration = Duration::from_secs(10);

/// What one Sentinel reported about one group.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GroupReport {
    master: Option<String>,
    replicas: Vec<String>,
    /// False when the Sentinel monitors no master by the group's name (a nil reply).
    known: bool,
}

/// Starts discovery on its own thread; it counts refreshes and failovers in `stats`.
pub fn spawn(
    pool: SentinelPoolConfig,
    cell: Arc<TopologyCell>,
    stats: Arc<DiscoveryStats>,
) -> std::io::Result<()> {
    let (_, tls) =
        crate::backend_tls::BackendTls::load_both(&pool.tls).map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("redmux-discovery".into())
        .spawn(move || {
            let run = async move { Discovery::new(pool, tls, cell, stats).run().await };
            if let Err(e) = crate::worker::run_local(run) {
                tracing::error!(error = %e, "discovery runtime failed to start");
            }
        })?;
    Ok(())
}

struct Discovery {
    pool: SentinelPoolConfig,
    /// TLS to the Sentinels (`sentinel_tls`).
    tls: Option<Arc<BackendTls>>,
    cell: Arc<TopologyCell>,
    /// Configured Sentinels plus those learned from `SENTINEL sentinels`.
    sentinels: std::cell::RefCell<Vec<String>>,
    subscribed: std::cell::RefCell<HashSet<String>>,
    /// Sentinels whose refusal (password, TLS, error reply) was logged (once each).
    refused: std::cell::RefCell<HashSet<String>>,
    /// Groups no answering Sentinel knows by name (logged once each, until one does).
    unknown_groups: std::cell::RefCell<HashSet<usize>>,
    /// No Sentinel answered the last refresh (logged once, until one answers).
    unanswered: std::cell::Cell<bool>,
    refresh_now: Notify,
    /// Masters announced by events (group index → address, when): a poll that still
    /// names the old master (Sentinels update it at the end of the failover) must not
    /// move writes back to it.
    announced: std::cell::RefCell<std::collections::HashMap<usize, (String, std::time::Instant)>>,
    stats: Arc<DiscoveryStats>,
}

impl Discovery {
    fn new(
        pool: SentinelPoolConfig,
        tls: Option<Arc<BackendTls>>,
        cell: Arc<TopologyCell>,
        stats: Arc<DiscoveryStats>,
    ) -> Rc<Discovery> {
        Rc::new(Discovery {
            stats,
            tls,
            sentinels: std::cell::RefCell::new(pool.sentinels.clone()),
            subscribed: std::cell::RefCell::new(HashSet::new()),
            refused: std::cell::RefCell::new(HashSet::new()),
            unknown_groups: std::cell::RefCell::new(HashSet::new()),
            unanswered: std::cell::Cell::new(false),
            announced: std::cell::RefCell::new(std::collections::HashMap::new()),
            pool,
            cell,
            refresh_now: Notify::new(),
        })
    }

    async fn run(self: Rc<Self>) {
        loop {
            self.ensure_subscriptions();
            self.refresh().await;
            tokio::select! {
                _ = tokio::time::sleep(self.pool.refresh_interval.max(Duration::from_millis(100))) => {}
                _ = self.refresh_now.notified() => {}
            }
        }
    }

    fn ensure_subscriptions(self: &Rc<Self>) {
        let sentinels = self.sentinels.borrow().clone();
        for s in sentinels {
            if self.subscribed.borrow_mut().insert(s.clone()) {
                let me = self.clone();
                tokio::task::spawn_local(async move { me.subscribe_loop(s).await });
            }
        }
    }

    /// Asks every Sentinel at once and publishes what the majority says.
    async fn refresh(self: &Rc<Self>) {
        let sentinels = self.sentinels.borrow().clone();
        let mut tasks = Vec::new();
        for s in &sentinels {
            let pool = self.pool.clone();
            let tls = self.tls.clone();
            let addr = s.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let query = query_sentinel(&pool, tls.as_deref(), &addr);
                tokio::time::timeout(SENTINEL_TIMEOUT * 2, query)
                    .await
                    .unwrap_or_else(|_| Err(SentinelFailure::Unreachable("timed out".into())))
            }));
        }
        let mut reports = Vec::new();
        // Failures not already logged with what to change.
        let mut unexplained = Vec::new();
        for (task, addr) in tasks.into_iter().zip(&sentinels) {
            match task.await {
                Ok(Ok((groups, peers))) => {
                    self.refused.borrow_mut().remove(addr);
                    reports.push(groups);
                    self.learn_sentinels(peers);
                }
                Ok(Err(e)) => match e.hint() {
                    Some(hint) => {
                        if self.refused.borrow_mut().insert(addr.clone()) {
                            tracing::error!(sentinel = %addr, error = %e, "{hint}");
                        }
                    }
                    None => {
                        tracing::debug!(sentinel = %addr, error = %e, "sentinel did not answer");
                        unexplained.push(format!("{addr}: {e}"));
                    }
                },
                Err(_) => {}
            }
        }
        self.stats.refreshed(!reports.is_empty());
        if reports.is_empty() {
            // Failures already logged with a hint do not start a silent spell: when the
            // Sentinels become unreachable after that, it is still said.
            if !unexplained.is_empty() && !self.unanswered.replace(true) {
                tracing::warn!(
                    sentinels = %unexplained.join("; "),
                    "no Sentinel answered: clients get 'no master known' until one does"
                );
            }
            return;
        }
        if self.unanswered.replace(false) {
            tracing::info!(sentinels = reports.len(), "Sentinels answer again");
        }
        self.check_group_names(&reports);
        let current = self.cell.load();
        let next = self.build(&current, &reports);
        if next.groups != current.groups {
            log_changes(&current, &next);
            self.stats.observe(&current, &next);
            self.cell.publish(next);
        }
    }

    /// Logs (once) a group that no answering Sentinel monitors under its name: a typo in
    /// the group name otherwise shows only as 'no master known' to clients.
    fn check_group_names(&self, reports: &[Vec<GroupReport>]) {
        for (gi, group) in self.pool.groups.iter().enumerate() {
            let known = reports.iter().any(|r| r.get(gi).is_some_and(|g| g.known));
            let mut unknown = self.unknown_groups.borrow_mut();
            if !known && unknown.insert(gi) {
                tracing::error!(
                    group = %group.name,
                    sentinels = reports.len(),
                    "no Sentinel that answered monitors a master by this name: check the group \
                     name (`SENTINEL MASTERS` on a Sentinel lists the names it monitors)"
                );
            } else if known && unknown.remove(&gi) {
                tracing::info!(group = %group.name, "a Sentinel now monitors this group");
            }
        }
    }

    fn learn_sentinels(&self, peers: Vec<String>) {
        let mut list = self.sentinels.borrow_mut();
        for p in peers {
            if !list.contains(&p) {
                tracing::info!(sentinel = %p, "learned a sentinel");
                list.push(p);
            }
        }
    }

    /// Builds the next snapshot: per group, the master most Sentinels name (ties keep the
    /// current master), and the replicas a Sentinel agreeing on that master reports.
    fn build(&self, current: &Topology, reports: &[Vec<GroupReport>]) -> Topology {
        let mut next = current.clone();
        for (gi, group) in next.groups.iter_mut().enumerate() {
            let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
            for r in reports {
                if let Some(m) = r.get(gi).and_then(|g| g.master.as_deref()) {
                    *votes.entry(m).or_default() += 1;
                }
            }
            let best = votes.values().copied().max().unwrap_or(0);
            if best == 0 {
                continue;
            }
            let cur = group.master.as_deref();
            let winner = match cur {
                Some(c) if votes.get(c) == Some(&best) => c.to_string(),
                _ => match votes.iter().find(|(_, &v)| v == best) {
                    Some((m, _)) => m.to_string(),
                    None => continue,
                },
            };
            if let Some((announced, at)) = self.announced.borrow().get(&gi) {
                if *announced != winner && at.elapsed() < ANNOUNCED_WINS_FOR {
                    continue;
                }
            }
            if self
                .announced
                .borrow()
                .get(&gi)
                .is_some_and(|(a, _)| *a == winner)
            {
                self.announced.borrow_mut().remove(&gi);
            }
            let replicas = reports
                .iter()
                .filter_map(|r| r.get(gi))
                .find(|g| g.master.as_deref() == Some(winner.as_str()))
                .map(|g| g.replicas.clone())
                .unwrap_or_default();
            set_group(group, &winner, &replicas, &self.pool.groups[gi].servers);
        }
        next
    }

    /// Subscribes to one Sentinel's events; reconnects until the process ends.
    async fn subscribe_loop(self: Rc<Self>, addr: String) {
        let connected = std::cell::Cell::new(false);
        // A refused subscription was logged (once, until one succeeds).
        let mut refused = false;
        loop {
            // It returns only with a failure: the subscription is followed until then.
            let Err(error) = self.subscribe_once(&addr, &connected).await;
            let mut delay = RESUBSCRIBE_DELAY;
            if connected.replace(false) {
                refused = false;
                self.stats.sentinel_lost();
                tracing::warn!(sentinel = %addr, error = %error, "sentinel connection lost");
            } else if matches!(error, SentinelFailure::Refused(_)) {
                // Answered, but not subscribed (an ACL user without pub/sub rights gets
                // NOPERM): polling still works, so only events are lost. A password
                // refusal is the refresh's to log: it gets the same answer.
                if !std::mem::replace(&mut refused, true) {
                    tracing::warn!(
                        sentinel = %addr, error = %error,
                        "cannot subscribe to this Sentinel's events: failovers are followed by \
                         polling only (every refresh_interval); give the Sentinel user pub/sub \
                         rights (allchannels)"
                    );
                }
                delay = RESUBSCRIBE_REFUSED_DELAY;
            } else {
                tracing::debug!(sentinel = %addr, error = %error, "sentinel not reachable");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Subscribes and follows events; `connected` is set once subscribed.
    async fn subscribe_once(
        &self,
        addr: &str,
        connected: &std::cell::Cell<bool>,
    ) -> Result<std::convert::Infallible, SentinelFailure> {
        let tls = self.tls.as_deref();
        let mut stream = connect_sentinel(&self.pool, tls, addr).await?;
        let mut req = BytesMut::new();
        encode_request(&mut req, &[b"PSUBSCRIBE", b"*"]);
        let reply = exchange(&mut stream, tls, &req, 1).await?;
        if let Some(text) = reply[0].strip_prefix(b"-") {
            // A password refusal is logged by the next refresh, which gets the same answer.
            return Err(SentinelFailure::from_reply(text));
        }
        connected.set(true);
        self.stats.sentinel_up();
        tracing::info!(sentinel = %addr, "sentinel connected");
        // Refresh now: whatever happened while we were not subscribed is picked up.
        self.refresh_now.notify_one();
        let mut buf = BytesMut::with_capacity(4096);
        let mut scanner = crate::protocol::ReplyScanner::new();
        loop {
            let unreachable = |e: String| SentinelFailure::Unreachable(e);
            while let Some(len) = scanner.scan(&buf).map_err(|e| unreachable(e.to_string()))? {
                let frame = buf.split_to(len).freeze();
                if let Ok(Value::Array(items)) = Value::parse(&frame) {
                    self.on_event(&items);
                }
            }
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            if n == 0 {
                return Err(unreachable("connection closed".into()));
            }
        }
    }

    /// One `pmessage` from a Sentinel.
    fn on_event(&self, items: &[Value]) {
        let (Some(channel), Some(payload)) = (
            items.get(2).and_then(Value::as_text),
            items.get(3).and_then(Value::as_text),
        ) else {
            return;
        };
        let words: Vec<&str> = payload.split(' ').collect();
        match channel.as_str() {
            "+try-failover" => {
                // master <name> <ip> <port>
                if let ["master", name, ip, port] = words[..] {
                    if self.names_current_master(name, ip, port) {
                        tracing::info!(group = name, "failover started: holding writes");
                        self.set_hold(name, true);
                    }
                }
            }
            "+promoted-slave" => {
                // slave <ip:port> <ip> <port> @ <name> <old ip> <old port>
                if let ["slave", _, ip, port, "@", name, old_ip, old_port] = words[..] {
                    if self.names_current_master(name, old_ip, old_port) {
                        let new_master = format!("{ip}:{port}");
                        tracing::info!(group = name, master = %new_master, "replica promoted: writes go to it");
                        self.switch_master(name, &new_master);
                    }
                }
                self.refresh_now.notify_one();
            }
            c if c.starts_with("-failover-abort") || c == "+failover-end-for-timeout" => {
                if let ["master", name, ip, port] = words[..] {
                    if !self.names_current_master(name, ip, port) {
                        return;
                    }
                    tracing::warn!(
                        group = name,
                        event = c,
                        "failover aborted: writes released to the current master"
                    );
                    self.set_hold(name, false);
                }
                self.refresh_now.notify_one();
            }
            "+switch-master" => {
                // <name> <old ip> <old port> <new ip> <new port>
                let parts: Vec<&str> = payload.split(' ').collect();
                let new_master = parts.get(3..5).map(|p| p.join(":")).unwrap_or_default();
                if parts.len() == 5
                    && !self.names_current_master_quiet(parts[0], &new_master)
                    && self.names_current_master(parts[0], parts[1], parts[2])
                {
                    tracing::info!(group = parts[0], master = %new_master, "sentinel announced a new master");
                    self.switch_master(parts[0], &new_master);
                }
                self.refresh_now.notify_one();
            }
            "+sdown" | "-sdown" | "+odown" | "-odown" | "+slave" | "+reboot" | "+role-change"
            | "-role-change" | "+convert-to-slave" | "+failover-end" | "+sentinel"
            | "+slave-reconf-done" | "-dup-sentinel" | "+reset-master" => {
                self.refresh_now.notify_one();
            }
            _ => {}
        }
    }

    /// True when `ip:port` is the master the proxy routes group `name` to. An event about
    /// another master comes from a Sentinel that disagrees with the majority (stale, or
    /// monitoring another master under the same name): it must not move traffic, so it
    /// is ignored and the Sentinels are asked again.
    fn names_current_master(&self, name: &str, ip: &str, port: &str) -> bool {
        let same = self.names_current_master_quiet(name, &format!("{ip}:{port}"));
        if !same {
            tracing::debug!(group = name, master = %format!("{ip}:{port}"), "event about another master than the current one: ignored");
            self.refresh_now.notify_one();
        }
        same
    }

    /// True when `addr` is the master the proxy routes group `name` to.
    fn names_current_master_quiet(&self, name: &str, addr: &str) -> bool {
        let current = self.cell.load();
        current
            .groups
            .iter()
            .any(|g| g.name == name && g.master.as_deref() == Some(addr))
    }

    /// Starts or ends holding a group's writes.
    fn set_hold(&self, name: &str, on: bool) {
        let current = self.cell.load();
        let Some(gi) = current.groups.iter().position(|g| g.name == name) else {
            return;
        };
        if current.groups[gi].hold.is_some() == on {
            return;
        }
        let mut next = (*current).clone();
        next.groups[gi].hold = on.then(|| FailoverHold {
            since: std::time::Instant::now(),
        });
        self.cell.publish(next);
    }

    /// Moves a group's master at once, without waiting for the next poll.
    fn switch_master(&self, name: &str, addr: &str) {
        let current = self.cell.load();
        let Some(gi) = current.groups.iter().position(|g| g.name == name) else {
            return;
        };
        if current.groups[gi].master.as_deref() == Some(addr) && current.groups[gi].hold.is_none() {
            return;
        }
        let mut next = (*current).clone();
        let group = &mut next.groups[gi];
        let replicas: Vec<String> = group
            .replicas
            .iter()
            // Every replica but the new master; `set_group` gives each its role again.
            .filter(|r| &*r.addr != addr)
            .map(|r| r.addr.to_string())
            .collect();
        set_group(group, addr, &replicas, &self.pool.groups[gi].servers);
        group.hold = None;
        self.announced
            .borrow_mut()
            .insert(gi, (addr.to_string(), std::time::Instant::now()));
        log_changes(&current, &next);
        self.stats.observe(&current, &next);
        self.cell.publish(next);
    }
}

/// Sets a group's master and replicas. Only servers Sentinel reports as this group's
/// replicas serve reads; those also listed in the config (`servers` of the group) get the
/// static read priority, the others the dynamic one. A listed server Sentinel does not
/// report (not a replica, down, or another group's server) is not used, as in predixy: the
/// list only marks servers, it does not add them.
fn set_group(group: &mut Group, master: &str, dynamic: &[String], statics: &[String]) {
    if group.master.as_deref() != Some(master) {
        group.master = Some(ServerAddr::from(master));
        // A new master ends any failover hold.
        group.hold = None;
    }
    let mut replicas: Vec<Replica> = Vec::with_capacity(dynamic.len());
    for d in dynamic {
        if d != master && !replicas.iter().any(|r| &*r.addr == d.as_str()) {
            let role = if statics.contains(d) {
                Role::StaticReplica
            } else {
                Role::DynamicReplica
            };
            replicas.push(Replica {
                addr: reuse_addr(group, d),
                role,
            });
        }
    }
    group.replicas = replicas;
}

/// Keeps the same shared address string for a server already known (cheap comparisons).
fn reuse_addr(group: &Group, addr: &str) -> ServerAddr {
    group
        .replicas
        .iter()
        .find(|r| &*r.addr == addr)
        .map(|r| r.addr.clone())
        .unwrap_or_else(|| ServerAddr::from(addr))
}

fn log_changes(old: &Topology, new: &Topology) {
    for (o, n) in old.groups.iter().zip(&new.groups) {
        if o.master != n.master {
            tracing::info!(
                group = %n.name,
                old = o.master.as_deref().unwrap_or("none"),
                new = n.master.as_deref().unwrap_or("none"),
                "master changed"
            );
        }
        let before: HashSet<&str> = o.replicas.iter().map(|r| &*r.addr).collect();
        let after: HashSet<&str> = n.replicas.iter().map(|r| &*r.addr).collect();
        for added in after.difference(&before) {
            tracing::info!(group = %n.name, server = %added, "replica up");
        }
        for removed in before.difference(&after) {
            if n.master.as_deref() == Some(*removed) {
                tracing::info!(group = %n.name, server = %removed, "replica is now the master");
            } else {
                tracing::info!(group = %n.name, server = %removed, "replica down or removed");
            }
        }
    }
}

/// Connects to a Sentinel and authenticates when a Sentinel password is set.
async fn connect_sentinel(
    pool: &SentinelPoolConfig,
    tls: Option<&BackendTls>,
    addr: &str,
) -> Result<BackendStream, SentinelFailure> {
    let tcp = tokio::time::timeout(SENTINEL_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| SentinelFailure::Unreachable("connect timed out".into()))?
        .map_err(|e| SentinelFailure::Unreachable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let mut stream = match tls {
        None => BackendStream::Plain(tcp),
        Some(tls) => tokio::time::timeout(SENTINEL_TIMEOUT, tls.handshake(tcp, addr))
            .await
            .map_err(|_| SentinelFailure::Tls("TLS handshake failed: timed out".into()))?
            .map_err(SentinelFailure::Tls)?,
    };
    if let Some(pw) = &pool.sentinel_password {
        let mut req = BytesMut::new();
        match &pool.sentinel_user {
            Some(u) => encode_request(&mut req, &[b"AUTH", u.as_bytes(), pw.as_bytes()]),
            None => encode_request(&mut req, &[b"AUTH", pw.as_bytes()]),
        }
        let reply = exchange(&mut stream, tls, &req, 1).await?;
        if reply[0].first() == Some(&b'-') {
            return Err(SentinelFailure::Password(format!(
                "sentinel refused the password: {}",
                String::from_utf8_lossy(&reply[0]).trim_end()
            )));
        }
    }
    Ok(stream)
}

/// Why a Sentinel could not be used, sorted by what the operator has to change.
#[derive(Debug)]
enum SentinelFailure {
    /// A password is wanted (NOAUTH) or refused (WRONGPASS, or an error to AUTH).
    Password(String),
    /// The TLS handshake failed, or the server refused the client certificate.
    Tls(String),
    /// An error reply about the whole connection: not a Sentinel, or no rights (NOPERM).
    Refused(String),
    /// Not reachable: refused or timed-out connect, a closed or broken connection.
    Unreachable(String),
}

impl SentinelFailure {
    /// What to check, for the failures that trying again will not mend.
    fn hint(&self) -> Option<&'static str> {
        match self {
            SentinelFailure::Password(_) => Some("check `sentinel_password`/`sentinel_user`"),
            SentinelFailure::Tls(_) => {
                Some("check `sentinel_tls`, `tls_ca`, `tls_cert` and `tls_key`")
            }
            SentinelFailure::Refused(_) => Some("is this address a Sentinel?"),
            SentinelFailure::Unreachable(_) => None,
        }
    }

    /// A Sentinel's error reply (without its `-`).
    fn from_reply(text: &[u8]) -> SentinelFailure {
        let text = String::from_utf8_lossy(text).trim_end().to_string();
        if text.starts_with("NOAUTH") {
            SentinelFailure::Password(format!("sentinel requires a password: {text}"))
        } else if text.starts_with("WRONGPASS") {
            SentinelFailure::Password(format!("sentinel refused the password: {text}"))
        } else {
            SentinelFailure::Refused(format!("sentinel answered an error: {text}"))
        }
    }

    /// An I/O error; over TLS, a refused client certificate arrives as one.
    fn from_io(tls: Option<&BackendTls>, e: String) -> SentinelFailure {
        match tls.and_then(|_| crate::backend_tls::describe_alert(&e)) {
            Some(alert) => SentinelFailure::Tls(alert),
            None => SentinelFailure::Unreachable(e),
        }
    }
}

impl std::fmt::Display for SentinelFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SentinelFailure::Password(e)
            | SentinelFailure::Tls(e)
            | SentinelFailure::Refused(e)
            | SentinelFailure::Unreachable(e) => f.write_str(e),
        }
    }
}

/// Writes `req` and reads `count` replies.
async fn exchange(
    stream: &mut BackendStream,
    tls: Option<&BackendTls>,
    req: &[u8],
    count: usize,
) -> Result<Vec<bytes::Bytes>, SentinelFailure> {
    let io = |e: String| SentinelFailure::from_io(tls, e);
    stream.write_all(req).await.map_err(|e| io(e.to_string()))?;
    stream.flush().await.map_err(|e| io(e.to_string()))?;
    read_replies(stream, count).await.map_err(io)
}

/// Asks one Sentinel about every group: master, usable replicas, and its peers.
async fn query_sentinel(
    pool: &SentinelPoolConfig,
    tls: Option<&BackendTls>,
    addr: &str,
) -> Result<(Vec<GroupReport>, Vec<String>), SentinelFailure> {
    let mut stream = connect_sentinel(pool, tls, addr).await?;
    let mut req = BytesMut::new();
    for g in &pool.groups {
        let name = g.name.as_bytes();
        encode_request(&mut req, &[b"SENTINEL", b"get-master-addr-by-name", name]);
        encode_request(&mut req, &[b"SENTINEL", b"replicas", name]);
        encode_request(&mut req, &[b"SENTINEL", b"sentinels", name]);
    }
    let replies = exchange(&mut stream, tls, &req, pool.groups.len() * 3).await?;
    let mut groups = Vec::new();
    let mut peers = Vec::new();
    for chunk in replies.chunks(3) {
        let mut known = !matches!(Value::parse(&chunk[0]), Ok(Value::Null));
        if let Some(text) = chunk[0].strip_prefix(b"-") {
            match SentinelFailure::from_reply(text) {
                // About this group only (an old Sentinel's IDONTKNOW): no vote from here.
                SentinelFailure::Refused(e)
                    if !e.contains("NOPERM") && !e.contains("unknown command") =>
                {
                    let group = pool
                        .groups
                        .get(groups.len())
                        .map_or("?", |g| g.name.as_str());
                    tracing::debug!(sentinel = %addr, group, error = %e, "no master named");
                    known = true;
                }
                // About the whole connection.
                whole => return Err(whole),
            }
        }
        let master = Value::parse(&chunk[0]).ok().and_then(|v| match v {
            Value::Array(items) if items.len() == 2 => {
                Some(format!("{}:{}", items[0].as_text()?, items[1].as_text()?))
            }
            _ => None,
        });
        let replicas = Value::parse(&chunk[1])
            .map(|v| usable_replicas(&v))
            .unwrap_or_default();
        if let Ok(v) = Value::parse(&chunk[2]) {
            peers.extend(instances(&v).into_iter().map(|f| f.addr));
        }
        groups.push(GroupReport {
            master,
            replicas,
            known,
        });
    }
    Ok((groups, peers))
}

/// An instance entry of `SENTINEL replicas` / `SENTINEL sentinels`.
struct Instance {
    addr: String,
    flags: String,
    link_ok: bool,
}

fn instances(v: &Value) -> Vec<Instance> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let fields: Vec<(String, String)> = match item {
            Value::Array(kv) => kv
                .chunks(2)
                .filter_map(|p| Some((p.first()?.as_text()?, p.get(1)?.as_text()?)))
                .collect(),
            Value::Map(kv) => kv
                .iter()
                .filter_map(|(k, v)| Some((k.as_text()?, v.as_text()?)))
                .collect(),
            _ => continue,
        };
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
        let (Some(ip), Some(port)) = (get("ip"), get("port")) else {
            continue;
        };
        out.push(Instance {
            addr: format!("{ip}:{port}"),
            flags: get("flags").unwrap_or_default(),
            link_ok: get("master-link-status").is_none_or(|s| s == "ok"),
        });
    }
    out
}

/// Replicas that may serve reads: not down, not disconnected, linked to their master.
fn usable_replicas(v: &Value) -> Vec<String> {
    instances(v)
        .into_iter()
        .filter(|i| {
            let bad = i
                .flags
                .split(',')
                .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"));
            !bad && i.link_ok
        })
        .map(|i| i.addr)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(group: &Group) -> Vec<(String, Role)> {
        let r = group.replicas.iter();
        r.map(|r| (r.addr.to_string(), r.role)).collect()
    }

    #[test]
    fn listed_servers_serve_only_when_sentinel_reports_them() {
        let mut group = Topology::unknown(&["g".to_string()]).groups.remove(0);
        let statics = vec!["10.0.0.2:6379".to_string(), "10.0.0.9:6379".to_string()];
        let dynamic = vec!["10.0.0.2:6379".to_string(), "10.0.0.3:6379".to_string()];
        set_group(&mut group, "10.0.0.1:6379", &dynamic, &statics);
        assert_eq!(group.master.as_deref(), Some("10.0.0.1:6379"));
        // 10.0.0.9 is listed but not a replica Sentinel knows: not used.
        assert_eq!(
            addrs(&group),
            [
                ("10.0.0.2:6379".to_string(), Role::StaticReplica),
                ("10.0.0.3:6379".to_string(), Role::DynamicReplica)
            ]
        );
        // A listed server that became the master is not also a replica.
        set_group(&mut group, "10.0.0.2:6379", &dynamic, &statics);
        assert_eq!(
            addrs(&group),
            [("10.0.0.3:6379".to_string(), Role::DynamicReplica)]
        );
    }

    #[test]
    fn a_switch_master_event_keeps_the_listed_replicas() {
        use crate::config::GroupConfig;
        let pool = SentinelPoolConfig {
            groups: vec![GroupConfig {
                name: "g".into(),
                servers: vec!["10.0.0.2:6379".into()],
            }],
            ..Default::default()
        };
        let mut topo = Topology::unknown(&["g".to_string()]);
        let dynamic = vec!["10.0.0.2:6379".to_string(), "10.0.0.3:6379".to_string()];
        set_group(
            &mut topo.groups[0],
            "10.0.0.1:6379",
            &dynamic,
            &pool.groups[0].servers,
        );
        let cell = Arc::new(TopologyCell::new(topo));
        let discovery = Discovery::new(pool, None, cell.clone(), Arc::new(DiscoveryStats::new(1)));
        discovery.switch_master("g", "10.0.0.4:6379");
        assert_eq!(
            addrs(&cell.load().groups[0]),
            [
                ("10.0.0.2:6379".to_string(), Role::StaticReplica),
                ("10.0.0.3:6379".to_string(), Role::DynamicReplica)
            ]
        );
    }
}
