// node-postgres (npm "pg") through agentgate-proxy, as an agent developer
// would write it: a Pool, TLS with the CA file, the token as the password
// from a function (re-read for every new connection, so a refreshed token is
// picked up).  Prints one "CHECK name ok|fail detail" line per check.
'use strict';
const fs = require('fs');
const pg = require('pg');

const env = process.env;
const token = () => fs.readFileSync(env.AG_TOKEN_FILE, 'utf8').trim();
const config = {
  host: env.AG_HOST,
  port: Number(env.AG_PORT),
  database: env.AG_DB,
  user: 'agent',                       // ignored: the role comes from the token
  password: async () => token(),       // the token refresh hook
  ssl: { ca: fs.readFileSync(env.AG_CA) },
  max: 4,
};

function check(name, ok, detail) {
  console.log(`CHECK ${name} ${ok ? 'ok' : 'fail'} ${detail || ''}`.trimEnd());
}
async function step(name, fn) {
  try {
    const d = await fn();
    check(name, true, d);
  } catch (e) {
    check(name, false, `${e.code || ''} ${e.message}`.replace(/\n/g, ' '));
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function parallel(pool, n, per, q) {
  // n clients held at once, so the statements really run on n connections
  const clients = await Promise.all(Array.from({ length: n }, () => pool.connect()));
  const pids = new Set();
  try {
    await Promise.all(clients.map(async (c, ci) => {
      for (let i = 0; i < per; i++) {
        const v = ci * 1000 + i;
        const r = await c.query(q(v));
        if (r.rows[0].v !== v + 1) throw new Error(`wrong answer ${r.rows[0].v} for ${v}`);
        pids.add(r.rows[0].s);
      }
    }));
  } finally {
    clients.forEach((c) => c.release());
  }
  return `${n} connections x ${per} statements, ${pids.size} sessions`;
}

(async () => {
  const pool = new pg.Pool(config);
  pool.on('error', (e) => console.error('pool error:', e.message));
  let role;
  await step('connect', async () => {
    const r = await pool.query('SELECT session_user AS u');
    role = r.rows[0].u;
    if (!/^agent_/.test(role)) throw new Error(`role ${role}`);
    return role;
  });
  // parameters: the extended protocol with the unnamed statement
  await step('unnamed', () => parallel(pool, 4, 25,
    (v) => ({ text: 'SELECT $1::int + 1 AS v, agentgate.session_id() AS s', values: [v] })));
  // named statements: Parse once per connection, then Bind/Execute
  await step('named', () => parallel(pool, 4, 25,
    (v) => ({ name: 'add-one', text: 'SELECT $1::int + 1 AS v, agentgate.session_id() AS s', values: [v] })));
  await step('named_table', async () => {
    const r = await pool.query({ name: 'item-by-id', text: 'SELECT name FROM items WHERE id = $1', values: [7] });
    const r2 = await pool.query({ name: 'item-by-id', text: 'SELECT name FROM items WHERE id = $1', values: [8] });
    return `${r.rows[0].name}, ${r2.rows[0].name}`;
  });
  await step('refusal', async () => {
    try {
      await pool.query('DELETE FROM items');
    } catch (e) {
      if (e.code === '42501' && /agentgate/.test(e.message)) return e.message;
      throw e;
    }
    throw new Error('DELETE without WHERE was not refused');
  });
  await step('after_refusal', async () => {
    const r = await pool.query('SELECT count(*)::int AS n FROM items');
    return `${r.rows[0].n} rows kept`;
  });
  await step('cancel', async () => {
    const c = await pool.connect();
    try {
      const q = new pg.Query('SELECT pg_sleep(20)');
      const t0 = Date.now();
      const done = new Promise((resolve) => {
        q.on('error', (e) => resolve(e));
        q.on('end', () => resolve(null));
      });
      c.query(q);
      await sleep(500);
      new pg.Client(config).cancel(c, q);
      const e = await done;
      if (!e || e.code !== '57014') throw new Error(`not cancelled: ${e && e.message}`);
      return `cancelled after ${Date.now() - t0} ms`;
    } finally {
      c.release();
    }
  });
  await step('listen', async () => {
    try {
      await pool.query('LISTEN jobs');
    } catch (e) {
      if (/LISTEN would lose notifications/.test(e.detail || e.message)) return e.message;
      throw e;
    }
    throw new Error('LISTEN was accepted');
  });
  await pool.end();
  // the IdP's agent refreshes the token; new connections use the new one
  await step('rotation', async () => {
    fs.copyFileSync(env.AG_TOKEN_NEXT_FILE, env.AG_TOKEN_FILE);
    const pool2 = new pg.Pool(config);
    const r = await pool2.query('SELECT session_user AS u');
    await pool2.end();
    if (r.rows[0].u !== role) throw new Error(`role ${r.rows[0].u}, was ${role}`);
    return 'same role with the refreshed token';
  });
})().catch((e) => { console.error(e); process.exit(1); });
