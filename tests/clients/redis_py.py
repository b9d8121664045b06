"""redis-py with its default settings (RESP3 in redis-py 8) against redmux.

Usage: python redis_py.py HOST PORT PASSWORD
Prints "OK redis-py <version> resp<N>" when every step passed; raises otherwise.
"""
import os
import sys
import threading
import time

import redis


def main():
    host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
    # Defaults, plus the password and a database (so the handshake includes SELECT).
    r = redis.Redis(host=host, port=port, password=password, db=1)
    other = redis.Redis(host=host, port=port, password=password, db=1)
    assert r.ping() is True
    conn = r.connection_pool.get_connection()
    resp = conn.protocol
    r.connection_pool.release(conn)
    assert str(resp) == "3", f"redis-py default protocol is {resp!r}, expected 3"
    info = r.client_info()
    assert info["db"] == 1 and str(info["resp"]) == "3", info
    if os.environ.get("MATRIX_SETINFO"):  # CLIENT SETINFO exists from Redis 7.2 (and in redmux)
        assert info["lib-name"].startswith("redis-py"), info

    # Plain commands with RESP3-typed replies.
    r.delete("py:h", "py:z", "py:l", "py:n")
    r.hset("py:h", mapping={"a": "1", "b": "2"})
    assert r.hgetall("py:h") == {b"a": b"1", b"b": b"2"}
    r.zadd("py:z", {"m": 1.5})
    assert r.zscore("py:z", "m") == 1.5
    assert r.get("py:missing") is None

    # Pipeline (no transaction).
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set(f"py:k{i}", i)
        p.get(f"py:k{i}")
    out = p.execute()
    assert out == [x for i in range(200) for x in (True, str(i).encode())], out[:6]

    # MULTI/EXEC transaction, and WATCH.
    with r.pipeline(transaction=True) as tx:
        tx.incr("py:n").incr("py:n").get("py:n")
        assert tx.execute() == [1, 2, b"2"]
    with r.pipeline() as tx:
        tx.watch("py:n")
        tx.multi()
        tx.incr("py:n")
        assert tx.execute() == [3]

    # Pub/sub: subscribe here, publish from another client.
    ps = r.pubsub()
    ps.subscribe("py:chan")
    msg = ps.get_message(timeout=5)
    assert msg and msg["type"] == "subscribe", msg
    assert other.publish("py:chan", "hello") == 1
    msg = ps.get_message(timeout=5)
    assert msg and msg["type"] == "message" and msg["data"] == b"hello", msg
    ps.unsubscribe("py:chan")
    ps.close()

    # Blocking pop woken by a push from another client.
    def push():
        time.sleep(0.3)
        other.lpush("py:l", "wake")

    t = threading.Thread(target=push)
    t0 = time.time()
    t.start()
    got = r.blpop(["py:l"], timeout=5)
    t.join()
    assert got == (b"py:l", b"wake") or got == [b"py:l", b"wake"], got
    assert time.time() - t0 < 4, "BLPOP was not woken by LPUSH"
    # The connection pool still works after the blocking command.
    assert r.get("py:n") == b"3"
    print(f"OK redis-py {redis.__version__} resp{resp}")


if __name__ == "__main__":
    main()
