// The Node share of the soak test (soak.py starts it): N connections of mysql2, each a closed loop
// of the account store's traffic, half with query() (text protocol, as most Node code) and half
// with execute() (prepared statements, cached per connection). One connection in 20 operations is
// replaced: end() (COM_QUIT) or destroy() (the socket dropped, as a killed process leaves it).
// Every 10 s, and on SIGTERM before exiting, it prints one JSON line:
// {"ops": n since the last line, "errors": {code: count}, "last_error": text}.
//
// Usage: node mysql2_worker.js host port user password connections think_ms
'use strict';
const mysql = require('mysql2/promise');

const [host, port, user, password, connections, thinkMs] = process.argv.slice(2);
const ACCOUNTS = 2000, DOMAINS = 20, LISTS = 20;
let ops = 0, errors = {}, lastError = '', stopping = false;

function report() {
  process.stdout.write(JSON.stringify({ ops, errors, last_error: lastError }) + '\n');
  ops = 0; errors = {};
}
const timer = setInterval(report, 10000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (n) => 1 + Math.floor(Math.random() * n);

async function connect() {
  return mysql.createConnection({ host, port: Number(port), user, password, database: 'cairn_soak' });
}

async function worker(k) {
  const prepared = k % 2 === 0;
  let conn = null;
  while (!stopping) {
    try {
      if (conn === null) conn = await connect();
      const run = (sql, params) => (prepared ? conn.execute(sql, params) : conn.query(sql, params));
      const i = rand(ACCOUNTS), d = (i - 1) % DOMAINS + 1, roll = Math.random();
      if (roll < 0.45) {
        await run("select a.* from account a, domain d where a.domain_id=d.id and a.localpart=? and d.name=? and a.state='active'",
          [`user${i}`, `dom${d}.example`]);
      } else if (roll < 0.60) {
        await run('SELECT a.id, d.name, f.address FROM account a JOIN domain d ON d.id = a.domain_id LEFT JOIN forward f ON f.account_id = a.id WHERE a.id = ?', [i]);
      } else if (roll < 0.70) {
        await run('SELECT COUNT(*) AS n FROM subscriber WHERE list_id = ?', [i % LISTS + 1]);
      } else if (roll < 0.85) {
        await run('UPDATE account SET last_login = NOW() WHERE id = ?', [i]);
      } else if (roll < 0.95) {
        await conn.beginTransaction();
        await run('SELECT quota_mb FROM account WHERE id = ? FOR UPDATE', [i]);
        const [res] = await run('INSERT INTO forward (account_id, address) VALUES (?, ?)', [i, `n${Math.random()}@soak.example`]);
        await run('DELETE FROM forward WHERE id = ?', [res.insertId]);
        if (Math.random() < 0.2) await conn.rollback(); else await conn.commit();
      } else {
        if (Math.random() < 1 / 3) conn.destroy(); else await conn.end();
        conn = null;
      }
      ops++;
    } catch (err) {
      const code = err.errno === undefined ? -1 : err.errno;
      errors[code] = (errors[code] || 0) + 1;
      lastError = String(err.message).slice(0, 200);
      if (conn !== null) { conn.destroy(); conn = null; }
    }
    await sleep(Number(thinkMs) * (0.5 + Math.random()));
  }
  if (conn !== null) { try { await conn.end(); } catch (_) { conn.destroy(); } }
}

const all = [];
for (let k = 0; k < Number(connections); k++) all.push(worker(k));
process.on('SIGTERM', () => { stopping = true; });
Promise.all(all).then(() => { clearInterval(timer); report(); process.exit(0); });
