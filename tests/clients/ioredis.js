// ioredis with its default settings (RESP3 in ioredis 6) against redmux.
// Usage: node ioredis.js HOST PORT PASSWORD
// Prints "OK ioredis <version> resp3" when every step passed; exits non-zero otherwise.
"use strict";
const assert = require("assert/strict");
const Redis = require("ioredis");
const version = require("ioredis/package.json").version;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const [host, port, password] = process.argv.slice(2);
  // Defaults (ready check with INFO, CLIENT SETINFO) plus password and a database (SELECT).
  const opts = { host, port: Number(port), password: password || undefined, db: 1,
    connectionName: "matrix-ioredis", maxRetriesPerRequest: 1 };
  const r = new Redis(opts);
  const other = new Redis(opts);
  try {
    assert.equal(await r.ping(), "PONG");
    const info = await r.client("INFO");
    assert.match(info, /db=1 /, info);
    assert.match(info, /name=matrix-ioredis /, info);
    assert.match(info, /resp=3/, info);
    if (process.env.MATRIX_SETINFO) assert.match(info, /lib-name=ioredis/, info);
    assert.equal(await r.client("GETNAME"), "matrix-ioredis");

    await r.del("io:h", "io:l", "io:n");
    await r.hset("io:h", { a: "1", b: "2" });
    assert.deepEqual(await r.hgetall("io:h"), { a: "1", b: "2" });
    assert.equal(await r.get("io:missing"), null);

    // Pipeline.
    const p = r.pipeline();
    for (let i = 0; i < 200; i++) p.set(`io:k${i}`, i).get(`io:k${i}`);
    const out = await p.exec();
    out.forEach(([err, v], j) => {
      assert.equal(err, null);
      assert.equal(v, j % 2 === 0 ? "OK" : String(Math.floor(j / 2)));
    });

    // MULTI/EXEC, and WATCH.
    const tx = await r.multi().incr("io:n").incr("io:n").get("io:n").exec();
    assert.deepEqual(tx, [[null, 1], [null, 2], [null, "2"]]);
    await r.watch("io:n");
    assert.deepEqual(await r.multi().incr("io:n").exec(), [[null, 3]]);

    // Pub/sub: subscribe here, publish from another client.
    const sub = new Redis(opts);
    const got = new Promise((resolve) => sub.on("message", (ch, msg) => resolve([ch, msg])));
    assert.equal(await sub.subscribe("io:chan"), 1);
    assert.equal(await other.publish("io:chan", "hello"), 1);
    assert.deepEqual(await Promise.race([got, sleep(5000).then(() => "timeout")]), ["io:chan", "hello"]);
    sub.disconnect();

    // Blocking pop woken by a push from another client.
    const t0 = Date.now();
    const pushed = sleep(300).then(() => other.lpush("io:l", "wake"));
    const popped = await r.blpop("io:l", 5);
    await pushed;
    assert.deepEqual(popped, ["io:l", "wake"]);
    assert.ok(Date.now() - t0 < 4000, "BLPOP was not woken by LPUSH");
    assert.equal(await r.get("io:n"), "3");
    console.log(`OK ioredis ${version} resp3`);
  } finally {
    r.disconnect();
    other.disconnect();
  }
}

main().catch((e) => {
  console.error("FAIL ioredis:", e);
  process.exit(1);
});
