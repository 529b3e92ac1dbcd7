"""pgqueuer no-op drain on the same PostgreSQL, for a side-by-side with volumed-bench drain."""
import asyncio, sys, time, os, subprocess
import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

DSN = sys.argv[1]
MODE = sys.argv[2]

async def setup():
    conn = await asyncpg.connect(DSN)
    driver = AsyncpgDriver(conn)
    q = Queries(driver)
    try:
        await q.install()
    except Exception:
        pass
    await conn.close()

async def enqueue(n):
    conn = await asyncpg.connect(DSN)
    q = Queries(AsyncpgDriver(conn))
    await q.clear_queue()
    if n > 0:
        await q.enqueue(["noop"] * n, [None] * n, [0] * n)
    await conn.close()

async def drain(n, consumers):
    """The side-by-side harness, as volumed-bench drain runs it: the consumers are connected,
    idle and listening; the clock starts just before the enqueue statement is sent and stops at
    the first 10 ms poll (on an already open connection) that finds no job left."""
    conn = await asyncpg.connect(DSN)
    q = Queries(AsyncpgDriver(conn))
    deadline = time.monotonic() + 60
    while await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()") < consumers:
        if time.monotonic() > deadline:
            raise SystemExit("pgqueuer consumers did not connect within 60 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(2)  # past verify_structure and LISTEN: idle and listening
    start = time.monotonic()
    await q.enqueue(["noop"] * n, [None] * n, [0] * n)
    enqueued = time.monotonic() - start
    deadline = start + 300
    while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pgqueuer)"):
        if time.monotonic() > deadline:
            print(0, 0)
            return
        await asyncio.sleep(0.01)
    print(n / (time.monotonic() - start), enqueued)
    await conn.close()

async def pending():
    conn = await asyncpg.connect(DSN)
    q = Queries(AsyncpgDriver(conn))
    total = sum(s.count for s in await q.queue_size())
    await conn.close()
    return total

async def consume(batch):
    conn = await asyncpg.connect(DSN)
    pgq = PgQueuer(AsyncpgDriver(conn))
    @pgq.entrypoint("noop")
    async def noop(job):
        pass
    await pgq.run(batch_size=batch)

if MODE == "setup":
    asyncio.run(setup())
elif MODE == "enqueue":
    asyncio.run(enqueue(int(sys.argv[3])))
elif MODE == "drain":
    asyncio.run(drain(int(sys.argv[3]), int(sys.argv[4])))
elif MODE == "pending":
    print(asyncio.run(pending()))
elif MODE == "consume":
    asyncio.run(consume(int(sys.argv[3])))
