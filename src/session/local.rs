//! Commands the proxy answers itself, as Redis would: AUTH, HELLO, SELECT, PING, ECHO,
//! QUIT, RESET, CLIENT, and INFO/COMMAND (which ask a backend or the admin module).

use super::{Args, Client};
use crate::command::{ArgList, CommandClass, CommandSpec};
use crate::protocol::{
    parse_i64, put_array_header, put_bulk, put_integer, put_map_header, put_null, put_simple,
    put_verbatim,
};

/// What HELLO reports as the server version: the Redis version whose commands redmux
/// speaks, so clients that gate features on it behave as with that Redis.
const REDIS_VERSION: &str = "7.0.15";

impl Client {
    /// Handles a proxy-local command. False when the connection must close.
    pub(super) async fn local(&mut self, spec: &CommandSpec, args: &Args<'_>) -> bool {
        match spec.name {
            "auth" => self.auth(args),
            "hello" => self.hello(args),
            "select" => self.select(args),
            "ping" => {
                self.scratch.clear();
                if args.len() > 1 {
                    put_bulk(&mut self.scratch, args.arg(1));
                } else {
                    put_simple(&mut self.scratch, "PONG");
                }
                self.reply_scratch();
            }
            "echo" => {
                self.scratch.clear();
                put_bulk(&mut self.scratch, args.arg(1));
                self.reply_scratch();
            }
            "quit" => {
                self.scratch.clear();
                put_simple(&mut self.scratch, "OK");
                self.reply_scratch();
                self.shared.close_after();
                return false;
            }
            "reset" => {
                // As on a real connection, a blocking command or transaction still
                // running on the dedicated link finishes before RESET takes effect.
                if self.multi.is_none() {
                    self.settle_dedicated().await;
                    // Requests after this one are timed from now, not from the read.
                    self.now = tokio::time::Instant::now();
                }
                return reset(self);
            }
            "info" => {
                self.info(args).await;
                // INFO may have waited for every group's master: requests after it are
                // timed from now, not from the read.
                self.now = tokio::time::Instant::now();
            }
            name if name.starts_with("client") => self.client_command(spec, args),
            name if name.starts_with("command") => {
                // COMMAND's answers come from a backend: they describe the Redis behind us.
                let read = CommandSpec {
                    class: CommandClass::Read,
                    keys: &[],
                    ..*spec
                };
                self.forward(&read, args).await;
            }
            other => self.error(&format!("ERR redmux: '{other}' is not handled here")),
        }
        // A refused AUTH (too many failures) closes the connection.
        !self.shared.is_closing()
    }

    fn auth(&mut self, args: &Args<'_>) {
        let password = args.arg(args.len() - 1);
        if args.len() > 3 {
            self.error("ERR syntax error");
            return;
        }
        self.try_password(password, true);
    }

    /// Checks a password; on success changes the client's rights. A failure leaves the
    /// rights as they were, as Redis does.
    fn try_password(&mut self, password: &[u8], reply: bool) -> bool {
        let auth = self.ctx.proxy.auth.load();
        if !auth.requires_password() {
            if reply {
                self.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
            return false;
        }
        if self.auth_blocked() {
            return false;
        }
        match auth.authenticate(password) {
            Some(rights) => {
                self.rights = Some(rights);
                if reply {
                    self.scratch.clear();
                    put_simple(&mut self.scratch, "OK");
                    self.reply_scratch();
                }
                true
            }
            None => {
                self.ctx
                    .proxy
                    .stats
                    .auth_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let failures = self
                    .peer_ip()
                    .map(|ip| self.ctx.proxy.auth_limiter.failed(ip));
                // The password itself is never logged.
                tracing::info!(client = %self.peer, failures, "authentication failed");
                if reply {
                    self.error("WRONGPASS invalid username-password pair or user is disabled.");
                }
                false
            }
        }
    }

    /// `CONFIG SET redmux.reload yes` (admin rights, checked by the caller's class check).
    pub(super) fn reload_config(&mut self) {
        tracing::info!(client = %self.peer, "config reload requested");
        match crate::reload::reload(&self.ctx.proxy) {
            Ok(()) => {
                self.scratch.clear();
                put_simple(&mut self.scratch, "OK");
                self.reply_scratch();
            }
            Err(e) => {
                let line = e.replace(['\r', '\n'], " ");
                self.error(&format!("ERR redmux: {line}"));
            }
        }
    }

    /// The client's IP address, for per-address limits.
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.ip())
    }

    /// True (and the client told and closed) when its address has failed AUTH too often
    /// this minute: the password is then not even checked.
    fn auth_blocked(&mut self) -> bool {
        let proxy = self.ctx.proxy.clone();
        let limit = proxy.live.auth_failure_limit();
        let Some(ip) = self.peer_ip() else {
            return false;
        };
        if !proxy.auth_limiter.is_blocked(ip, limit) {
            return false;
        }
        let n = proxy
            .stats
            .auth_blocked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(client = %self.peer, limit, blocked = n + 1, "AUTH refused: too many failures from this address");
        }
        self.error("ERR redmux: too many failed AUTH attempts from this address, try again later");
        self.shared.close_after();
        true
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
    fn hello(&mut self, args: &Args<'_>) {
        let mut proto = if self.resp3 { 3 } else { 2 };
        let mut i = 1;
        if args.len() > 1 {
            match parse_i64(args.arg(1)) {
                Some(2) => proto = 2,
                Some(3) => proto = 3,
                Some(_) => {
                    self.error("NOPROTO unsupported protocol version");
                    return;
                }
                None => {
                    self.error("ERR Protocol version is not an integer or out of range");
                    return;
                }
            }
            i = 2;
        }
        let mut name = None;
        while i < args.len() {
            let opt = args.arg(i).to_ascii_lowercase();
            if opt == b"auth" && i + 2 < args.len() {
                if !self.try_password(args.arg(i + 2), false) {
                    if self.shared.is_closing() {
                        return;
                    }
                    let auth = self.ctx.proxy.auth.load();
                    if auth.requires_password() {
                        self.error("WRONGPASS invalid username-password pair or user is disabled.");
                    } else {
                        self.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
                    }
                    return;
                }
                i += 3;
            } else if opt == b"setname" && i + 1 < args.len() {
                name = Some(args.arg(i + 1));
                i += 2;
            } else {
                self.error(&format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(args.arg(i))
                ));
                return;
            }
        }
        if self.rights.is_none() {
            self.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
            return;
        }
        if let Some(n) = name {
            if !valid_client_name(n) {
                self.error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
                return;
            }
            self.name = (!n.is_empty()).then(|| bytes::Bytes::copy_from_slice(n));
        }
        if self.resp3 != (proto == 3) {
            self.switched = true;
        }
        self.resp3 = proto == 3;
        let resp3 = self.resp3;
        self.scratch.clear();
        let s = &mut self.scratch;
        put_map_header(s, 7, resp3);
        put_bulk(s, b"server");
        put_bulk(s, b"redis");
        put_bulk(s, b"version");
        put_bulk(s, REDIS_VERSION.as_bytes());
        put_bulk(s, b"proto");
        put_integer(s, proto);
        put_bulk(s, b"id");
        put_integer(s, self.id as i64);
        put_bulk(s, b"mode");
        put_bulk(s, b"standalone");
        put_bulk(s, b"role");
        put_bulk(s, b"master");
        put_bulk(s, b"modules");
        put_array_header(s, 0);
        self.reply_scratch();
    }

    fn select(&mut self, args: &Args<'_>) {
        let Some(db) = parse_i64(args.arg(1)) else {
            self.error("ERR value is not an integer or out of range");
            return;
        };
        let databases = self.ctx.proxy.config.sentinel_pool.databases as i64;
        if db < 0 || db >= databases {
            self.error("ERR DB index is out of range");
            return;
        }
        if self.db != db as u32 {
            self.switched = true;
        }
        self.db = db as u32;
        self.scratch.clear();
        put_simple(&mut self.scratch, "OK");
        self.reply_scratch();
    }

    fn client_command(&mut self, spec: &CommandSpec, args: &Args<'_>) {
        self.scratch.clear();
        // CLIENT SETINFO is newer than the Redis 7.0 table; clients send it at connect.
        let sub = args.arg(1).to_ascii_lowercase();
        let name = if spec.name == "client" && sub == b"setinfo" {
            if args.len() != 4 {
                self.error("ERR wrong number of arguments for 'client|setinfo' command");
                return;
            }
            "client|setinfo"
        } else {
            spec.name
        };
        match name {
            "client|setname" => {
                let n = args.arg(2);
                if !valid_client_name(n) {
                    self.error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                    return;
                }
                self.name = (!n.is_empty()).then(|| bytes::Bytes::copy_from_slice(n));
                put_simple(&mut self.scratch, "OK");
            }
            "client|getname" => match &self.name {
                Some(n) => put_bulk(&mut self.scratch, n),
                None => put_null(&mut self.scratch, self.resp3),
            },
            "client|id" => put_integer(&mut self.scratch, self.id as i64),
            "client|info" | "client|list" => {
                let mut line = self.info_line();
                line.push('\n');
                put_verbatim(&mut self.scratch, line.as_bytes(), self.resp3);
            }
            "client|setinfo" => {
                let attr = args.arg(2).to_ascii_lowercase();
                let value = bytes::Bytes::copy_from_slice(args.arg(3));
                if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                    self.error(&format!(
                        "ERR {} cannot contain spaces, newlines or special characters.",
                        String::from_utf8_lossy(&attr)
                    ));
                    return;
                }
                match &attr[..] {
                    b"lib-name" => self.lib_name = Some(value),
                    b"lib-ver" => self.lib_ver = Some(value),
                    _ => {
                        self.error(&format!(
                            "ERR Unrecognized option '{}'",
                            String::from_utf8_lossy(args.arg(2))
                        ));
                        return;
                    }
                }
                put_simple(&mut self.scratch, "OK");
            }
            "client|help" => {
                let lines = [
                    "CLIENT <subcommand> [<arg> ...]. Subcommands answered by redmux:",
                    "GETNAME",
                    "SETNAME <name>",
                    "ID",
                    "INFO",
                    "LIST",
                    "SETINFO <attr> <value>",
                ];
                put_array_header(&mut self.scratch, lines.len());
                for l in lines {
                    put_simple(&mut self.scratch, l);
                }
            }
            other => {
                self.error(&format!(
                    "ERR redmux: '{other}' is not supported through the proxy"
                ));
                return;
            }
        }
        self.reply_scratch();
    }

    /// One `CLIENT INFO` line, in Redis' format (fields the proxy knows).
    fn info_line(&self) -> String {
        let age = self.created.elapsed().as_secs();
        let name = self
            .name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let lib = |v: &Option<bytes::Bytes>| {
            v.as_ref()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default()
        };
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle=0 flags={} db={} sub=0 psub=0 ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|info user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            self.ctx.proxy.config.bind,
            name,
            age,
            if self.pubsub.is_some() { "P" } else { "N" },
            self.db,
            if self.multi.is_some() { 0 } else { -1 },
            if self.resp3 { 3 } else { 2 },
            lib(&self.lib_name),
            lib(&self.lib_ver),
        )
    }

    async fn info(&mut self, args: &Args<'_>) {
        let sections: Vec<String> = (1..args.len())
            .map(|i| String::from_utf8_lossy(args.arg(i)).into_owned())
            .collect();
        let text = crate::admin::info(&self.ctx, &sections).await;
        self.scratch.clear();
        put_verbatim(&mut self.scratch, text.as_bytes(), self.resp3);
        self.reply_scratch();
    }

    /// An admin command the proxy answers about itself (CONFIG GET/SET/RESETSTAT).
    pub(super) fn proxy_admin(&mut self, spec: &CommandSpec, args: &Args<'_>) {
        use crate::admin::AdminReply;
        let argv: Vec<&[u8]> = (0..args.len()).map(|i| args.arg(i)).collect();
        match crate::admin::run_command(&self.ctx.proxy, spec.name, &argv) {
            AdminReply::Ok => {
                self.scratch.clear();
                put_simple(&mut self.scratch, "OK");
            }
            AdminReply::Error(text) => return self.error(&text),
            AdminReply::Pairs(pairs) => {
                self.scratch.clear();
                put_map_header(&mut self.scratch, pairs.len(), self.resp3);
                for (k, v) in pairs {
                    put_bulk(&mut self.scratch, k.as_bytes());
                    put_bulk(&mut self.scratch, v.as_bytes());
                }
            }
        }
        self.reply_scratch();
    }
}

/// RESET: back to a fresh connection's state (RESP2, db 0, no name, not authenticated
/// unless no password is needed).
pub(super) fn reset(client: &mut Client) -> bool {
    if let Some((link, _)) = client.private.take() {
        link.close();
    }
    if let Some(link) = client.pubsub.take() {
        link.close();
    }
    client.multi = None;
    client.watching = false;
    client.last_dedicated = false;
    // Requests still running on the old connections come first.
    client.switched = true;
    client.db = 0;
    client.resp3 = false;
    client.name = None;
    client.rights = client.ctx.proxy.auth.load().anonymous();
    client.scratch.clear();
    put_simple(&mut client.scratch, "RESET");
    client.reply_scratch();
    true
}

/// Redis' rule for client names: printable ASCII without spaces.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}
