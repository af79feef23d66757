// apps.console.browser: the console in a real browser. Starts a `comb node` (the accounts live
// in its console.accounts table) and `comb console` on loopback over a store it writes itself
// (tests/apps/console/make_fixture, with XSS payloads in request fields), then drives Debian's chromium headless through playwright-core: login and the
// refusal without it, each tab's behaviour, the XSS check (no payload ran, no request left
// for another host), the read-only refusals; writes screenshots of the three tabs.
// Exit 0 when all passed, 1 on a failure, 77 (ctest: skipped) only when chromium cannot start.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.resolve(here, '../../..');
const comb = args.comb || path.join(repo, 'build/comb');
const fixture = args.fixture || path.join(repo, 'build/tests/apps/console/console_make_fixture');
const shots = process.env.COMB_SCREENSHOTS_DIR || args.shots || path.join(repo, 'build/console-screenshots');
const chromiumPath = process.env.COMB_CHROMIUM || '/usr/bin/chromium';
const ROWS = 300; // one every 600 s from 2026-12-01 00:00 UTC: 50 hours over 3 days

let pw;
try {
  pw = createRequire(path.join(repo, 'apps/console/package.json'))('playwright-core');
} catch (e) {
  console.error('playwright-core is not installed in apps/console/node_modules: run scripts/setup.sh (npm ci)');
  process.exit(1);
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log('ok   - ' + name);
  } catch (e) {
    failed++;
    console.log('FAIL - ' + name + ': ' + (e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e));
    // Where the page was, to tell a slow machine from a wrong page.
    const at = await page.evaluate(() => location.href + ' | ' + document.title + ' | '
      + (document.getElementById('login-error')?.textContent || '') + ' | '
      + (document.getElementById('page-info')?.textContent || '')).catch((x) => String(x));
    console.log('       page: ' + at);
  }
}
function assert(cond, what) {
  if (!cond) throw new Error(what);
}

// What the fixture holds (console_fixture.hpp): request i has score (i % 100) / 100,
// method GET/POST/GET/GET by i % 4, status 404 when i % 13 == 0, rule label when i % 7 == 0.
const payloads = [
  '<script>window.__xss = 1</script>', '<img src=x onerror="window.__xss = 2">',
  '"><svg onload="window.__xss = 3"></svg>', '<img src="http://198.51.100.7/leak.png">',
  '<iframe src="http://198.51.100.7/frame"></iframe>', 'javascript:window.__xss = 4',
];
const fx = Array.from({ length: ROWS }, (_, i) => ({
  i, score: (i % 100) / 100, method: ['GET', 'POST', 'GET', 'GET'][i % 4],
  payload: i % 10 === 3 ? payloads[Math.floor(i / 10) % payloads.length] : null,
  status: i % 13 === 0 ? 404 : 200, path: ['/feed', '/login', '/u/alice', '/search', '/post', '/static/nectar.css'][i % 6],
}));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'comb-console-browser-'));
const store = path.join(tmp, 'store.sqlite');
let server = null;
let node = null;
let browser = null;
const cleanup = () => {
  if (server && server.exitCode === null) server.kill('SIGTERM');
  if (node && node.exitCode === null) node.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
const deadline = setTimeout(() => {
  console.error('browser test ran past 150 s: giving up');
  process.exit(1);
}, 150000);

function run(cmd, argv, input) {
  const r = spawnSync(cmd, argv, { input, encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(cmd + ' ' + argv.join(' ') + ' failed: ' + r.stderr + r.stdout);
  return r.stdout;
}

// Spawns `comb ARGV` and resolves with the first match of `re` in its output.
function startChild(argv, re, what, ms) {
  const child = spawn(comb, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const ready = new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(what + ' did not start: ' + out + err)), ms);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(re);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    child.on('exit', (code) => reject(new Error(what + ' exited ' + code + ': ' + err)));
  });
  return { child, ready };
}

async function startConsole() {
  run(fixture, [store, String(ROWS)]);
  const n = startChild(['node', '--data', path.join(tmp, 'node'), '--listen', '127.0.0.1:0',
    '--durability', 'async', '--no-provenance'], /listening on (127\.0\.0\.1:\d+)/, 'comb node', 60000);
  node = n.child;
  const nodeAddr = await n.ready;
  // The account goes into the node's console.accounts table; the console asks the node.
  run(comb, ['console', 'add-user', '--node', nodeAddr, '--user', 'analyst'], 'analyst-pass-1\n');
  const c = startChild(['console', '--node', nodeAddr, '--sql', store, '--listen', '127.0.0.1:0',
    '--sql-timeout-ms', '1500'], /console listening on (http:\/\/\S+?)\/?\s/, 'comb console', 15000);
  server = c.child;
  return await c.ready;
}

const base = await startConsole();
try {
  browser = await pw.chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
} catch (e) {
  console.log('SKIPPED: chromium cannot start here (' + chromiumPath + '): ' + String(e.message).split('\n')[0]);
  process.exit(77);
}

const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
const external = [];
const pageErrors = [];
// Any request for another host is recorded and stopped: the XSS payloads point at one.
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith(base) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
  external.push(url);
  return route.abort();
});
await context.addInitScript(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
});
const page = await context.newPage();
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.setDefaultTimeout(20000); // generous: the machine may be busy building

const rowsOf = async () => page.$$eval('#overview-body tr', (trs) => trs.map((tr) =>
  Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.key, td.textContent]))));
const pageInfo = () => page.textContent('#page-info');
async function waitInfo(re) {
  await page.waitForFunction((src) => new RegExp(src).test(document.getElementById('page-info').textContent), re.source);
}

await check('without a login: pages redirect to /login, the API answers 401', async () => {
  await page.goto(base + '/');
  assert(page.url() === base + '/login', 'landed on ' + page.url());
  const status = await page.evaluate(async () => (await fetch('/api/sql', { method: 'POST', body: '{"sql":"SELECT 1"}' })).status);
  assert(status === 401, 'api status ' + status);
});

await check('a wrong password is refused', async () => {
  await page.fill('#username', 'analyst');
  await page.fill('#password', 'wrong-password');
  await Promise.all([
    page.waitForResponse((r) => r.url() === base + '/login' && r.request().method() === 'POST'),
    page.click('#login-button'),
  ]);
  await page.waitForSelector('#login-error:not(:empty)');
  const err = await page.textContent('#login-error');
  assert(err.includes('Wrong username or password'), 'error shown: ' + err);
  assert(page.url().endsWith('/login'), 'left the login page');
});

await check('login opens the Overview', async () => {
  await page.fill('#username', 'analyst');
  await page.fill('#password', 'analyst-pass-1');
  await Promise.all([page.waitForURL(base + '/'), page.click('#login-button')]);
  await waitInfo(/of \d/);
  const cookies = await context.cookies();
  const c = cookies.find((x) => x.name === 'comb_console');
  assert(c && c.httpOnly && c.sameSite === 'Strict', 'cookie ' + JSON.stringify(c));
  assert(!(await page.evaluate(() => document.cookie)).includes('comb_console'), 'cookie visible to scripts');
});

await check('threshold slider: only requests at or above it', async () => {
  await page.fill('#threshold', '0.9');
  const want = fx.filter((r) => r.score >= 0.9).length;
  await waitInfo(new RegExp('of ' + want + '$'));
  const rows = await rowsOf();
  assert(rows.length === want, rows.length + ' rows');
  assert(rows.every((r) => Number(r.score) >= 0.9), 'a score under 0.9');
  assert(rows.every((r) => r.label.includes('anomalous')), 'predicted label');
});

await check('sort by any column (score ascending, then method)', async () => {
  await page.click('th[data-key="score"] button'); // score sorts descending first
  await page.waitForSelector('th[data-key="score"][aria-sort="descending"]');
  await page.click('th[data-key="score"] button');
  await page.waitForSelector('th[data-key="score"][aria-sort="ascending"]');
  await page.waitForFunction(() => { const c = [...document.querySelectorAll('#overview-body td[data-key="score"]')].map((td) => Number(td.textContent)); return c.length && c.every((v, i) => !i || v >= c[i - 1]); });
  await page.click('th[data-key="cs_method"] button');
  await page.waitForSelector('th[data-key="cs_method"][aria-sort="ascending"]');
  await page.waitForFunction(() => { const c = [...document.querySelectorAll('#overview-body td[data-key="cs_method"]')].map((td) => td.textContent); return c.length && c.every((v, i) => !i || v >= c[i - 1]); });
});

await check('paging is done by the server: 50 rows a page, next and previous', async () => {
  // The slider reloads the Overview after a 200 ms debounce and from the first page: wait for
  // that reload before paging, or it lands after 'next' and brings page 1 back.
  const settled = page.waitForResponse((r) => r.url().endsWith('/api/overview'));
  await page.fill('#threshold', '0');
  await settled;
  // The header click reloads in the other order; the old page's line already reads
  // 'rows 1-50', so wait for the reload itself before taking the first row.
  const unsorted = (await rowsOf())[0].ts_ns;
  await page.click('th[data-key="ts_ns"] button');
  await page.waitForFunction((old) => {
    const td = document.querySelector('#overview-body tr td[data-key="ts_ns"]');
    return td && td.textContent !== old;
  }, unsorted);
  await waitInfo(new RegExp('rows 1–50 of ' + ROWS + '$'));
  const first = (await rowsOf())[0].ts_ns;
  // Deep pages are keyset pages: 'next' asks for the rows after the last one shown.
  const nextReq = page.waitForRequest((r) => r.url().endsWith('/api/overview'));
  await page.click('#page-next');
  const sent = JSON.parse((await nextReq).postData());
  assert(typeof sent.after === 'string' && sent.offset === 0, 'next page without a cursor: ' + JSON.stringify(sent));
  await waitInfo(/rows 51–100 of/);
  assert((await rowsOf())[0].ts_ns !== first, 'same page');
  await page.click('#page-next');
  await waitInfo(/rows 101–150 of/);
  const prevReq = page.waitForRequest((r) => r.url().endsWith('/api/overview'));
  await page.click('#page-prev');
  assert(typeof JSON.parse((await prevReq).postData()).before === 'string', 'previous page without a cursor');
  await waitInfo(/rows 51–100 of/);
  await page.click('#page-prev');
  await waitInfo(/rows 1–50 of/);
  assert((await rowsOf())[0].ts_ns === first, 'back on page 1, not its first row');
});

await check('search inside the table', async () => {
  await page.fill('#table-search', '/login');
  const want = fx.filter((r) => r.path === '/login').length;
  await waitInfo(new RegExp('of ' + want + '$'));
  assert((await rowsOf()).every((r) => r.cs_uri_stem === '/login'), 'a row without /login');
  await page.fill('#table-search', '');
  await waitInfo(new RegExp('of ' + ROWS + '$'));
});

await check('advanced filters: AND / OR groups, the parameterised SQL shown under them', async () => {
  await page.click('#filters summary');
  const g = page.locator('fieldset.filter-group').first();
  await g.locator('.filter-field').first().selectOption('cs_method');
  await g.locator('.filter-cmp').first().selectOption('=');
  await g.locator('.filter-value').first().fill("POST' OR '1'='1");
  await g.locator('.filter-add').click();
  await g.locator('.filter-field').nth(1).selectOption('sc_status');
  await g.locator('.filter-cmp').nth(1).selectOption('=');
  await g.locator('.filter-value').nth(1).fill('404');
  await g.locator('.filter-group-op').selectOption('or');
  await page.click('#filter-apply');
  // The injected quote is a value like any other: it matches no method.
  const want1 = fx.filter((r) => r.status === 404).length;
  await waitInfo(new RegExp('of ' + want1 + '$'));
  const sql = await page.textContent('#overview-sql');
  assert(sql.includes('(r."cs_method" = ? OR r."sc_status" = ?)'), 'sql: ' + sql);
  assert(!sql.includes("'1'='1"), 'value pasted into SQL');
  assert((await page.textContent('#overview-params')).includes("POST' OR '1'='1"), 'params not shown');
  await g.locator('.filter-value').first().fill('POST');
  await g.locator('.filter-group-op').selectOption('and');
  await page.click('#filter-apply');
  const want2 = fx.filter((r) => r.method === 'POST' && r.status === 404).length;
  await waitInfo(new RegExp('of ' + want2 + '$'));
  await page.click('#filter-clear');
  await waitInfo(new RegExp('of ' + ROWS + '$'));
});

await check('clicking an EntryID opens the request as field/value pairs', async () => {
  await page.click('#overview-body tr:first-child button.entry');
  await page.waitForSelector('#record-dialog[open]');
  const names = await page.$$eval('#record-table td.name', (tds) => tds.map((td) => td.textContent));
  for (const f of ['cs_method', 'cs_uri_stem', 'cs_user_agent', 'raw', 'labeled.score', 'labeled.model_version'])
    assert(names.includes(f), 'no field ' + f + ' in ' + names.join(','));
  await page.click('#record-close');
});

await check('a request the store keeps as a digest: the popup says where its bytes are', async () => {
  // The fixture's req-5 has a digest marker as raw; the test's node has no such row, so the
  // note must say where the bytes are and that fetching them failed.
  await page.fill('#table-search', 'req-5');
  await page.waitForSelector('#overview-body button.entry[title="request req-5"]');
  await page.click('#overview-body button.entry[title="request req-5"]');
  await page.waitForSelector('#record-dialog[open] tr.elided-note');
  const note = await page.textContent('#record-table tr.elided-note td.value');
  assert(note.includes('70000 bytes') && note.includes('the Comb table httplog_request, key req-5')
    && note.includes('failed'), 'note: ' + note);
  await page.click('#record-close');
  await page.fill('#table-search', '');
  await waitInfo(new RegExp('of ' + ROWS + '$'));
});

await check('XSS payloads in the data are shown as text and never run', async () => {
  const hits = (term) => fx.filter((r) => r.payload && r.payload.includes(term)).length;
  await page.fill('#table-search', '<script>');
  await waitInfo(new RegExp('of ' + hits('<script>') + '$'));
  await page.click('#overview-body tr:first-child button.entry');
  await page.waitForSelector('#record-dialog[open]');
  const cells = await page.$$eval('#record-table td.value', (tds) => tds.map((td) => td.textContent));
  assert(cells.some((c) => c.includes('<script>window.__xss = 1</script>')), 'payload not shown as text');
  await page.click('#record-close');
  for (const p of ['onerror', 'svg onload', '198.51.100.7', 'iframe', 'javascript:']) {
    await page.fill('#table-search', p);
    await waitInfo(new RegExp('of ' + hits(p) + '$'));
    await page.click('#overview-body tr:first-child button.entry');
    await page.waitForSelector('#record-dialog[open]');
    await page.click('#record-close');
  }
  await page.fill('#table-search', '');
  const state = await page.evaluate(() => ({
    xss: window.__xss, imgs: document.querySelectorAll('img').length,
    frames: document.querySelectorAll('iframe').length, svgs: document.querySelectorAll('#record-table svg, #overview-table svg').length,
  }));
  assert(state.xss === undefined, 'a payload ran: window.__xss = ' + state.xss);
  assert(state.imgs === 0 && state.frames === 0 && state.svgs === 0, 'payload became markup: ' + JSON.stringify(state));
});

await check('Search: a query by Enter, the last query in bold, results as a table', async () => {
  await page.click('#tab-search');
  await page.fill('#search-sql', 'SELECT cs_method, COUNT(*) AS n FROM httplog_request GROUP BY 1 ORDER BY 1');
  await page.press('#search-sql', 'Enter');
  await page.waitForSelector('#search-table tbody tr');
  assert((await page.textContent('#search-last')).startsWith('SELECT cs_method'), 'last query');
  assert(await page.$eval('#search-last', (e) => getComputedStyle(e).fontWeight >= 600), 'not bold');
  const rows = await page.$$eval('#search-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const posts = fx.filter((r) => r.method === 'POST').length;
  assert(JSON.stringify(rows) === JSON.stringify([['GET', String(ROWS - posts)], ['POST', String(posts)]]), JSON.stringify(rows));
});

await check('Search: clear after submit, button submit', async () => {
  await page.check('#search-clear');
  await page.fill('#search-sql', 'SELECT 42 AS answer');
  await page.click('#search-run');
  await page.waitForFunction(() => document.querySelector('#search-table td')?.textContent === '42');
  assert((await page.inputValue('#search-sql')) === '', 'not cleared');
  await page.uncheck('#search-clear');
});

await check('Search: invalid SQL is a two-row table with the error and the query', async () => {
  await page.fill('#search-sql', 'SELEC nonsense');
  await page.click('#search-run');
  await page.waitForSelector('#search-table td.search-error');
  const rows = await page.$$eval('#search-table tr', (trs) => trs.map((tr) => tr.textContent));
  assert(rows.length === 2, rows.length + ' rows');
  assert(rows[0].includes('syntax error') && rows[1].includes('SELEC nonsense'), JSON.stringify(rows));
});

await check('Search is read-only: writes, ATTACH, PRAGMA writes and two statements refused', async () => {
  const cases = [
    ['DELETE FROM httplog_request', 'read-only'],
    ["ATTACH DATABASE '" + path.join(tmp, 'x.sqlite') + "' AS x", 'ATTACH'],
    ['PRAGMA user_version = 5', 'PRAGMA user_version'],
    ['SELECT 1; DROP TABLE httplog_request', 'one statement at a time'],
    ['CREATE TABLE t(x)', 'CREATE TABLE'],
  ];
  for (const [sql, says] of cases) {
    await page.fill('#search-sql', sql);
    await page.click('#search-run');
    await page.waitForFunction((s) => document.querySelector('#search-table td.search-query')?.textContent === s, sql);
    const err = await page.textContent('#search-table td.search-error');
    assert(err.includes(says), sql + ' -> ' + err);
  }
  await page.fill('#search-sql', 'SELECT COUNT(*) FROM httplog_request');
  await page.click('#search-run');
  await page.waitForFunction((n) => document.querySelector('#search-table tbody td')?.textContent === n, String(ROWS));
  assert(!fs.existsSync(path.join(tmp, 'x.sqlite')), 'ATTACH created a file');
});

await check('Search: a query past the time limit is stopped and says so', async () => {
  await page.fill('#search-sql', 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n');
  await page.click('#search-run');
  await page.waitForSelector('#search-table td.search-error', { timeout: 15000 });
  assert((await page.textContent('#search-table td.search-error')).includes('time limit'), 'no time limit message');
});

await check('Search history: the last 10 unique queries, a resubmitted one moves to the top', async () => {
  for (let i = 1; i <= 11; i++) {
    await page.fill('#search-sql', 'SELECT ' + i + ' AS q');
    await page.press('#search-sql', 'Enter');
    await page.waitForFunction((i) => document.querySelector('#search-table tbody td')?.textContent === String(i), i);
  }
  let items = await page.$$eval('#search-history button', (bs) => bs.map((b) => b.textContent));
  assert(items.length === 10 && items[0] === 'SELECT 11 AS q', JSON.stringify(items));
  await page.click('#search-history li:nth-child(5) button'); // SELECT 7 AS q
  await page.waitForFunction(() => document.querySelector('#search-table tbody td')?.textContent === '7');
  items = await page.$$eval('#search-history button', (bs) => bs.map((b) => b.textContent));
  assert(items[0] === 'SELECT 7 AS q' && items.length === 10 && new Set(items).size === 10, JSON.stringify(items));
  await page.fill('#search-sql', "SELECT row_key, cs_user_agent FROM httplog_request WHERE cs_user_agent LIKE '%<%' LIMIT 5");
  await page.press('#search-sql', 'Enter');
  await page.waitForSelector('#search-table tbody tr');
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, 'console-search.png') });
});

await check('Stats: a Plotly line plot per hour, updating on bucket and threshold without a submit', async () => {
  await page.click('#tab-stats');
  await page.waitForSelector('#stats-plot .scatterlayer .trace');
  await page.waitForFunction(() => /in \d+ hours/.test(document.getElementById('stats-status').textContent));
  assert(await page.$('#stats-plot .modebar-btn[data-title^="Download plot"]'), 'no image download button');
  assert(await page.$('#stats-plot .modebar-btn[data-title="Zoom"]') && await page.$('#stats-plot .modebar-btn[data-title="Pan"]'), 'no zoom/pan');
  await page.selectOption('#stats-bucket', 'day');
  await page.waitForFunction(() => /in 3 days/.test(document.getElementById('stats-status').textContent));
  await page.fill('#stats-threshold', '0.95');
  const want = fx.filter((r) => r.score >= 0.95).length;
  await page.waitForFunction((w) => document.getElementById('stats-status').textContent.startsWith(w + ' anomalies'), want);
  await page.selectOption('#stats-bucket', 'hour');
  await page.fill('#stats-threshold', '0.5');
  await page.waitForFunction(() => /at threshold 0.50 in \d+ hours/.test(document.getElementById('stats-status').textContent));
});

await check('Stats: hover shows a tooltip', async () => {
  const box = await page.locator('#stats-plot .nsewdrag').boundingBox();
  const pt = await page.locator('#stats-plot .scatterlayer .trace:first-child .point').nth(10).boundingBox();
  assert(box && pt, 'no plot area');
  await page.mouse.move(pt.x + pt.width / 2, pt.y + pt.height / 2);
  await page.waitForSelector('#stats-plot .hoverlayer .hovertext', { timeout: 5000 });
});

await check('Stats: brushing a time range filters the Overview', async () => {
  const box = await page.locator('#stats-plot .nsewdrag').boundingBox();
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.35, box.y + box.height * 0.5, { steps: 8 });
  await page.mouse.move(box.x + box.width * 0.45, box.y + box.height * 0.5, { steps: 8 });
  await page.mouse.up();
  await page.waitForFunction(() => /Overview now shows/.test(document.getElementById('stats-range').textContent));
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, 'console-stats.png') });
  await page.click('#tab-overview');
  await page.waitForSelector('#range-chip:not([hidden])');
  await page.waitForFunction((rows) => { const m = document.getElementById('page-info').textContent.match(/of (\d+)/); return m && Number(m[1]) > 0 && Number(m[1]) < rows; }, ROWS);
  const sql = await page.textContent('#overview-sql');
  assert(sql.includes('r."ts_ns" >= ?') && sql.includes('r."ts_ns" <= ?'), 'no time range in SQL: ' + sql);
  await page.fill('#threshold', '0.5');
  await waitInfo(/of \d+/);
  assert(!(await page.textContent('#overview-sql')).includes('LIKE'), 'an empty filter condition was applied');
  await page.$eval('#filters', (d) => { d.open = false; });
  await page.screenshot({ path: path.join(shots, 'console-overview.png') });
  await page.click('#range-clear');
  await waitInfo(/of 150$/);
});

await check('Stats: image download from the modebar', async () => {
  await page.click('#tab-stats');
  await page.waitForSelector('#stats-plot .modebar-btn[data-title^="Download plot"]');
  await page.hover('#stats-plot');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 10000 }),
    page.click('#stats-plot .modebar-btn[data-title^="Download plot"]'),
  ]);
  assert(download.suggestedFilename().endsWith('.png'), download.suggestedFilename());
});

await check('logout ends the session', async () => {
  await Promise.all([page.waitForURL(base + '/login'), page.click('#logout-button')]);
  const status = await page.evaluate(async () => (await fetch('/api/overview', { method: 'POST', body: '{}' })).status);
  assert(status === 401, 'api after logout: ' + status);
  await page.goto(base + '/');
  assert(page.url() === base + '/login', 'still in');
});

await check('nothing ran and nothing left the page: no script from the data, no foreign request, no CSP script violation', async () => {
  const csp = await page.evaluate(() => window.__csp);
  assert(external.length === 0, 'requests for other hosts: ' + external.join(', '));
  assert(!csp.some((v) => v.startsWith('script-src')), 'CSP script violations: ' + csp.join(', '));
  assert(pageErrors.length === 0, 'page errors: ' + pageErrors.join(' | '));
});

await browser.close();
clearTimeout(deadline);
console.log(`screenshots in ${shots}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
