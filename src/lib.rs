//! redmux: a Redis-protocol smart proxy for Sentinel-managed master/replica groups.
//!
//! # Layout
//! The path of one request, and the module that owns each step:
//! - [`worker`]: one OS thread per `worker_threads`, each with its own single-threaded
//!   runtime and its own SO_REUSEPORT listener; a worker owns its sessions and links.
//! - [`session`]: one client connection: parse, look up, check rights, route, queue the
//!   reply slot, write replies back strictly in request order.
//! - [`protocol`]: RESP request parsing (multibulk and inline, no copy) and reply framing.
//! - [`command`]: the command table (class and key positions of every Redis 7 command).
//! - [`auth`]: passwords to modes and key prefixes.
//! - [`routing`]: key to group (hash, hash tag, distribution), group to server.
//! - [`topology`]: the immutable snapshot of groups and servers that routing reads.
//! - [`discovery`]: asks the Sentinels and publishes new topology snapshots.
//! - [`backend`]: one pipelined connection to a server (a link), replies matched FIFO.
//! - [`backend_tls`]: optional TLS to the servers and Sentinels.
//! - [`hold`]: writes held while a group fails over, and refused writes re-sent.
//! - [`proxy_protocol`]: PROXY v1/v2 headers that carry the real client address.
//! - [`config`]: TOML and predixy-style files into one typed [`config::Config`].
//! - [`wake`]: the wake-up signal between two tasks of one worker (reader and writer).
//! - [`metrics`] and [`admin`]: counters, `/metrics`, INFO and the proxy's own commands.
//! - [`limits`] and [`reload`]: defences against hostile clients, and config reload.

pub mod admin;
pub mod auth;
pub mod backend;
pub mod backend_tls;
pub mod command;
pub mod config;
pub mod discovery;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod hold;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod proxy_protocol;
pub mod reload;
pub mod routing;
pub mod session;
pub mod tls;
pub mod topology;
pub mod wake;
pub mod worker;
