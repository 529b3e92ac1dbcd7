"""PostgreSQL's own floor for a completion notification: one UPDATE with pg_notify, its durable
commit, and the wake-up of a listener on another connection, at 200/s. volumed's
enqueue->notification latency spends two such commits (the claim's and the completion's)."""
import asyncio, sys, time
import asyncpg

DSN, COUNT = sys.argv[1], int(sys.argv[2])

async def main():
    writer, listener = await asyncpg.connect(DSN), await asyncpg.connect(DSN)
    await writer.execute("CREATE TABLE IF NOT EXISTS notify_floor (id int PRIMARY KEY, v int);"
                         "INSERT INTO notify_floor VALUES (1, 0) ON CONFLICT DO NOTHING")
    woken = asyncio.Queue()
    await listener.add_listener("notify_floor", lambda *_: woken.put_nowait(time.perf_counter()))
    latencies = []
    for _ in range(COUNT):
        start = time.perf_counter()
        await writer.execute("UPDATE notify_floor SET v = v + 1 WHERE id = 1 RETURNING pg_notify('notify_floor', '')")
        latencies.append((await woken.get() - start) * 1000)
        await asyncio.sleep(max(0, 0.005 - (time.perf_counter() - start)))
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))]
    print(f"PostgreSQL floor, UPDATE+commit+NOTIFY -> listener, {COUNT} at 200/s: "
          f"p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {latencies[-1]:.2f} ms")
    await writer.execute("DROP TABLE notify_floor")

asyncio.run(main())
