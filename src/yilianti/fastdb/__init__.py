"""Shared pieces of the PostgreSQL hot paths (booking, referral moves, recognition lookup).

Hot endpoints are served by pure-ASGI routes before the framework stack, each as one prepared
statement on asyncpg (PERFORMANCE.md: hot endpoints async with a bounded pool). What they share:

- `pool`: one asyncpg pool per process and event loop, `connection()`, `fetchrow`, and `Busy` (503)
  when every connection stays busy;
- `subject`: the cached resolution of the acting subject (API token or cookie session);
- `group`: `GroupCommit`, writes that arrive together in one statement and one commit;
- `route`: `FastRoute`, the pure-ASGI frame, and the worker-thread bridge to the ORM reference path.

The reference implementations stay the ORM services (the only path on SQLite).
"""
