/**
 * The credential proxy's cost: the same small GET sent directly to a local upstream, through the
 * in-broker proxy (`/proxy/<route>/…`) and through `nexus proxy` (standalone, tokens cached), with
 * wrk (Debian package `wrk`). Usage:
 *
 *   node bench/proxy.ts [--seconds 10] [--clients 20]
 *
 * Everything runs on this machine in separate processes (upstream, broker on a temporary SQLite
 * file, standalone proxy, wrk), so the figures include their competition for the two cores.
 * Reports requests/s, p50 and p99 for each path, the latency each proxy adds and its throughput ratio.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, clients: { type: 'string', default: '20' } },
});
const seconds = Number(values.seconds);
const clients = Number(values.clients);
const repo = join(import.meta.dirname, '..');
const bin = join(repo, 'apps/broker/bin/nexus.js');

function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => done(port));
    });
  });
}

async function until(url: string, headers: Record<string, string> = {}) {
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(url, { headers }).then(
      (r) => r.status < 500,
      () => false,
    );
    if (ok) return;
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`${url} did not come up`);
}

const ms = (text: string) => {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
};

function wrk(url: string, headers: string[]) {
  const args = ['-t2', `-c${clients}`, `-d${seconds}s`, '--latency'];
  for (const h of headers) args.push('-H', h);
  const out = execFileSync('wrk', [...args, url], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99 = ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  if (non2xx > 0) throw new Error(`${url}: ${non2xx} non-2xx answers\n${out}`);
  return { rps, p50, p99 };
}

const children: ReturnType<typeof spawn>[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'nexus-bench-proxy-'));
try {
  const [upstreamPort, brokerPort, proxyPort] = [await freePort(), await freePort(), await freePort()];
  const upstreamSource = `require('node:http').createServer((q, s) => { s.writeHead(200, {'content-type': 'application/json'}); s.end('{"ok":true,"items":[1,2,3]}'); }).listen(${upstreamPort}, '127.0.0.1');`;
  children.push(spawn(process.execPath, ['-e', upstreamSource], { stdio: 'inherit' }));
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  await until(`${upstream}/`);

  const adminKey = `bench-admin-${randomBytes(16).toString('hex')}`;
  const key = () => randomBytes(32).toString('base64');
  const broker = spawn(process.execPath, [bin, 'serve', '--no-worker'], {
    env: {
      PATH: process.env.PATH,
      NEXUS_ENV: 'test',
      NEXUS_DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(brokerPort),
      ENCRYPTION_KEY: key(),
      STATE_KEY: key(),
      API_KEYS: `bench:${adminKey}`,
      ALLOWED_RETURN_DOMAINS: 'localhost',
      NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_ENABLED: 'false',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(broker);
  const base = `http://127.0.0.1:${brokerPort}`;
  await until(`${base}/health`);
  const admin = async (method: string, path: string, body: unknown, auth = true) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(auth ? { 'x-api-key': adminKey } : {}) },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, string>>;
  };
  await admin('POST', '/providers', {
    profile: {
      name: 'bench',
      auth_type: 'header',
      api_base_url: upstream,
      params: { auth_strategy: { type: 'header', config: { header_name: 'X-Api-Key' } } },
    },
  });
  const started = await admin('POST', '/v1/request-connection', {
    user_id: 'bench-user',
    provider_name: 'bench',
    return_url: 'http://localhost/done',
  });
  await admin(
    'POST',
    '/v1/capture-credential',
    { state: started.state, credentials: { api_key: 'bench-key' } },
    false,
  );
  const id = started.connection_id!;
  const sidecar = await admin('POST', '/admin/v1/agents', {
    agent_id: 'sidecar',
    allowed_scopes: [],
    allowed_providers: ['bench'],
    allowed_workspaces: ['*'],
  });
  children.push(
    spawn(process.execPath, [bin, 'proxy'], {
      env: {
        PATH: process.env.PATH,
        NEXUS_URL: base,
        NEXUS_CLIENT_ID: 'sidecar',
        NEXUS_CLIENT_SECRET: sidecar.client_secret,
        NEXUS_ROUTES: `bench=${upstream}`,
        NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32',
        PROXY_PORT: String(proxyPort),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
  await until(`http://127.0.0.1:${proxyPort}/_nexus/health`);

  const caller = [`X-API-Key: ${adminKey}`, `X-Nexus-Connection-ID: ${id}`];
  wrk(`${upstream}/items`, []); // warm-up
  const direct = wrk(`${upstream}/items`, []);
  wrk(`${base}/proxy/bench/items`, caller);
  const inBroker = wrk(`${base}/proxy/bench/items`, caller);
  wrk(`http://127.0.0.1:${proxyPort}/bench/items`, caller);
  const standalone = wrk(`http://127.0.0.1:${proxyPort}/bench/items`, caller);

  const row = (name: string, r: ReturnType<typeof wrk>) =>
    `${name.padEnd(22)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms` +
    (r === direct
      ? ''
      : `   adds p50 ${(r.p50 - direct.p50).toFixed(2)} ms, p99 ${(r.p99 - direct.p99).toFixed(2)} ms; throughput ${(r.rps / direct.rps).toFixed(2)}× direct`);
  console.log(`wrk -t2 -c${clients} -d${seconds}s, GET of a 28-byte JSON answer, header strategy`);
  console.log(row('direct', direct));
  console.log(row('in-broker /proxy', inBroker));
  console.log(row('nexus proxy', standalone));
} finally {
  for (const child of children) child.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
