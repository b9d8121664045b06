// node-redis ("redis" on npm) with its default settings (RESP3 in v6) against redmux.
// Usage: node node_redis.js HOST PORT PASSWORD
// Prints "OK node-redis <version> resp3" when every step passed; exits non-zero otherwise.
"use strict";
const assert = require("assert/strict");
const { createClient } = require("redis");
const version = require("redis/package.json").version;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const [host, port, password] = process.argv.slice(2);
  // Defaults (HELLO 3, CLIENT SETINFO) plus password, a name and a database (SELECT).
  const r = createClient({ socket: { host, port: Number(port), reconnectStrategy: false },
    password: password || undefined, database: 1, name: "matrix-node-redis" });
  r.on("error", (e) => console.error("client error:", e));
  await r.connect();
  const other = r.duplicate();
  other.on("error", (e) => console.error("client error:", e));
  await other.connect();
  try {
    assert.equal(await r.ping(), "PONG");
    const info = await r.sendCommand(["CLIENT", "INFO"]);
    assert.match(String(info), /db=1 /, info);
    assert.match(String(info), /resp=3/, info);
    assert.match(String(info), /name=matrix-node-redis /, info);
    if (process.env.MATRIX_SETINFO) assert.match(String(info), /lib-name=node-redis/, info);

    await r.del(["nr:h", "nr:l", "nr:n"]);
    await r.hSet("nr:h", { a: "1", b: "2" });
    assert.deepEqual({ ...(await r.hGetAll("nr:h")) }, { a: "1", b: "2" });
    assert.equal(await r.get("nr:missing"), null);

    // Pipeline.
    const p = r.multi();
    for (let i = 0; i < 200; i++) p.set(`nr:k${i}`, String(i)).get(`nr:k${i}`);
    const out = await p.execAsPipeline();
    out.forEach((v, j) => assert.equal(v, j % 2 === 0 ? "OK" : String(Math.floor(j / 2))));

    // MULTI/EXEC, and WATCH.
    assert.deepEqual(await r.multi().incr("nr:n").incr("nr:n").get("nr:n").exec(), [1, 2, "2"]);
    const w = await r.duplicate().connect();
    await w.watch("nr:n");
    assert.deepEqual(await w.multi().incr("nr:n").exec(), [3]);
    await w.quit();

    // Pub/sub: subscribe here, publish from another client.
    const sub = r.duplicate();
    await sub.connect();
    const got = new Promise((resolve) => sub.subscribe("nr:chan", (msg, ch) => resolve([ch, msg])));
    await sleep(100);
    assert.equal(await other.publish("nr:chan", "hello"), 1);
    assert.deepEqual(await Promise.race([got, sleep(5000).then(() => "timeout")]), ["nr:chan", "hello"]);
    await sub.quit();

    // Blocking pop (on its own connection, as node-redis documents) woken by a push.
    const blocker = r.duplicate();
    await blocker.connect();
    const t0 = Date.now();
    const pushed = sleep(300).then(() => other.lPush("nr:l", "wake"));
    const popped = await blocker.blPop("nr:l", 5);
    await pushed;
    assert.deepEqual({ ...popped }, { key: "nr:l", element: "wake" });
    assert.ok(Date.now() - t0 < 4000, "BLPOP was not woken by LPUSH");
    await blocker.quit();
    assert.equal(await r.get("nr:n"), "3");
    console.log(`OK node-redis ${version} resp3`);
  } finally {
    await r.quit().catch(() => {});
    await other.quit().catch(() => {});
  }
}

main().catch((e) => {
  console.error("FAIL node-redis:", e);
  process.exit(1);
});
