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
elif MODE == "pending":
    print(asyncio.run(pending()))
elif MODE == "consume":
    asyncio.run(consume(int(sys.argv[3])))
