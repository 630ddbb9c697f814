// postgres.js (npm "postgres") through agentgate-proxy: once with its
// defaults (prepare: true, i.e. named statements for every query), once
// with prepare: false (what its documentation says for transaction-mode
// poolers).  TLS with the CA file; the token as the password from a
// function (the refresh hook).  Prints "CHECK name ok|fail detail" lines.
'use strict';
const fs = require('fs');
const postgres = require('postgres');

const env = process.env;
const token = () => fs.readFileSync(env.AG_TOKEN_FILE, 'utf8').trim();
const base = {
  host: env.AG_HOST,
  port: Number(env.AG_PORT),
  database: env.AG_DB,
  username: 'agent',              // ignored: the role comes from the token
  pass: () => token(),            // the token refresh hook, called per connection
  ssl: { ca: fs.readFileSync(env.AG_CA) },
  max: 4,
  onnotice: () => {},
};

function check(name, ok, detail) {
  console.log(`CHECK ${name} ${ok ? 'ok' : 'fail'} ${detail || ''}`.trimEnd());
}
async function step(name, fn) {
  try {
    check(name, true, await fn());
  } catch (e) {
    check(name, false, `${e.code || ''} ${e.message}`.replace(/\n/g, ' '));
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function suite(prefix, opts) {
  const sql = postgres({ ...base, ...opts });
  let role;
  await step(`${prefix}connect`, async () => {
    const [r] = await sql`SELECT session_user AS u`;
    role = r.u;
    if (!/^agent_/.test(role)) throw new Error(`role ${role}`);
    return role;
  });
  await step(`${prefix}parallel`, async () => {
    // 4 reserved connections of one identity, 25 parameterized statements each
    const conns = await Promise.all([0, 1, 2, 3].map(() => sql.reserve()));
    const sids = new Set();
    try {
      await Promise.all(conns.map(async (c, ci) => {
        for (let i = 0; i < 25; i++) {
          const v = ci * 1000 + i;
          const [r] = await c`SELECT ${v}::int + 1 AS v, agentgate.session_id() AS s`;
          if (r.v !== v + 1) throw new Error(`wrong answer ${r.v} for ${v}`);
          const [t] = await c`SELECT name FROM items WHERE id = ${(i % 100) + 1}`;
          if (t.name !== `item ${(i % 100) + 1}`) throw new Error(`wrong row ${t.name}`);
          sids.add(r.s);
        }
      }));
    } finally {
      conns.forEach((c) => c.release());
    }
    return `4 connections x 50 statements, ${sids.size} sessions`;
  });
  await step(`${prefix}refusal`, async () => {
    try {
      await sql`DELETE FROM items`;
    } catch (e) {
      if (e.code === '42501' && /agentgate/.test(e.message)) return e.message;
      throw e;
    }
    throw new Error('DELETE without WHERE was not refused');
  });
  await step(`${prefix}cancel`, async () => {
    const t0 = Date.now();
    const q = sql`SELECT pg_sleep(20)`;
    const p = q.then(() => null, (e) => e);
    await sleep(500);
    q.cancel();
    const e = await p;
    if (!e || e.code !== '57014') throw new Error(`not cancelled: ${e && e.message}`);
    return `cancelled after ${Date.now() - t0} ms`;
  });
  await step(`${prefix}listen`, async () => {
    try {
      await sql.listen('jobs', () => {});
    } catch (e) {
      if (/LISTEN would lose notifications/.test(e.detail || e.message)) return e.message;
      throw e;
    }
    throw new Error('LISTEN was accepted');
  });
  await sql.end({ timeout: 5 });
  return role;
}

(async () => {
  const role = await suite('', { prepare: false });
  await suite('default_', {});
  await step('rotation', async () => {
    fs.copyFileSync(env.AG_TOKEN_NEXT_FILE, env.AG_TOKEN_FILE);
    const sql = postgres({ ...base, prepare: false });
    const [r] = await sql`SELECT session_user AS u`;
    await sql.end({ timeout: 5 });
    if (r.u !== role) throw new Error(`role ${r.u}, was ${role}`);
    return 'same role with the refreshed token';
  });
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
