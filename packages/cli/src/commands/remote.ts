/** `nexus doctor --remote` (a running broker, over HTTP) and `nexus sessions` (agent sessions). */

import { CliError } from '../io.ts';
import { emit } from '../render.ts';
import type { Ctx } from './context.ts';
import { confirm } from './context.ts';

type Check = { status: 'ok' | 'warn' | 'fail'; check: string; detail: string };

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/**
 * Checks a remote broker the way an operator would before relying on it: reachable, ready, over
 * TLS (unless on this machine), the key accepted, clocks in step (tokens carry expiry times), the
 * API document served. Exit 1 when a check fails.
 */
export async function doctorRemote(ctx: Ctx): Promise<number> {
  const api = ctx.api();
  const base = new URL(api.url);
  const checks: Check[] = [];
  const add = (status: Check['status'], check: string, detail: string) =>
    checks.push({ status, check, detail });
  const get = async (path: string, auth: boolean) => {
    const started = Date.now();
    const res = await fetch(new URL(path, base), {
      headers: auth
        ? { 'x-api-key': api.apiKey, accept: 'application/json' }
        : { accept: 'application/json' },
      signal: AbortSignal.timeout(10_000),
    });
    return { res, ms: Date.now() - started, at: started };
  };

  let health: Awaited<ReturnType<typeof get>>;
  try {
    health = await get('/health', false);
  } catch (error) {
    add('fail', 'reachable', `${base.origin} cannot be reached: ${(error as Error).message}`);
    return report(ctx, checks);
  }
  if (health.res.ok) add('ok', 'reachable', `${base.origin}/health answered in ${health.ms} ms`);
  else add('fail', 'reachable', `/health answered ${health.res.status}`);

  if (base.protocol === 'https:') add('ok', 'tls', 'https');
  else if (LOOPBACK.test(base.hostname)) add('ok', 'tls', 'plain http on this machine');
  else
    add(
      'warn',
      'tls',
      `plain http to ${base.hostname}: the API key and tokens cross the network in clear; use https`,
    );

  const date = health.res.headers.get('date');
  if (date !== null) {
    const skew = Math.abs(Date.parse(date) - (health.at + health.ms / 2));
    if (skew > 30_000)
      add('warn', 'clock', `the broker's clock differs from this one by ${Math.round(skew / 1000)} s`);
    else add('ok', 'clock', `within ${Math.max(1, Math.round(skew / 1000))} s of this machine`);
  }

  const ready = await get('/ready', true).catch(() => undefined);
  if (ready === undefined) add('fail', 'ready', '/ready did not answer');
  else if (ready.res.ok) add('ok', 'ready', 'database and secret backend reachable, key ring current');
  else if (ready.res.status === 404)
    add('warn', 'ready', '/ready is not served here (a gateway role or the public listener)');
  else add('fail', 'ready', notReady(ready.res.status, await ready.res.text()));

  const auth = await get('/providers', true).catch(() => undefined);
  if (auth === undefined) add('fail', 'api key', '/providers did not answer');
  else if (auth.res.ok) add('ok', 'api key', 'accepted (admin API)');
  else if (auth.res.status === 401)
    add('fail', 'api key', 'refused: check API_KEY / NEXUS_API_KEY or the profile');
  else if (auth.res.status === 404)
    add('warn', 'api key', 'the admin API is not served here: point NEXUS_URL at the admin listener');
  else add('fail', 'api key', `/providers answered ${auth.res.status}`);

  const doc = await get('/openapi.json', false).catch(() => undefined);
  if (doc?.res.ok) {
    const version = ((await doc.res.json()) as { info?: { version?: string } }).info?.version;
    add('ok', 'api document', `OpenAPI served${version ? `, broker ${version}` : ''}`);
  } else add('warn', 'api document', '/openapi.json is not served here');
  return report(ctx, checks);
}

/**
 * What a 503 from /ready means, check by check. `key_ring: behind` (decision 0013): another live
 * broker writes with a key this one lacks; which key and which broker only `nexus doctor` on a
 * broker host tells (the public answer names no key).
 */
function notReady(status: number, body: string): string {
  let checks: Record<string, string> | undefined;
  try {
    checks = (JSON.parse(body) as { checks?: Record<string, string> }).checks;
  } catch {
    checks = undefined;
  }
  if (checks === undefined) return `/ready answered ${status}: ${body.slice(0, 200)}`;
  const failing = Object.entries(checks).filter(([, v]) => v !== 'ok');
  const parts = failing.map(([name, value]) =>
    name === 'key_ring' && value === 'behind'
      ? 'key ring behind (another running broker writes with a key this one lacks: it fails on what that one stores; give it the key, restart it or let it re-read its key file, and run `nexus doctor` on a broker host for which key and which broker)'
      : `${name.replaceAll('_', ' ')} ${value}`,
  );
  return `/ready answered ${status}: ${parts.length > 0 ? parts.join('; ') : body.slice(0, 200)}`;
}

function report(ctx: Ctx, checks: Check[]): number {
  emit(ctx.io, ctx.format, checks, () => {
    for (const c of checks)
      ctx.io.out(`${c.status.toUpperCase().padEnd(4)}  ${c.check.padEnd(12)}  ${c.detail}`);
  });
  return checks.some((c) => c.status === 'fail') ? 1 : 0;
}

/** `nexus sessions get ID | close ID`: an agent session, seen or ended with an admin key. */
export async function sessions(ctx: Ctx, verb: string | undefined): Promise<number> {
  const id = ctx.args[0];
  if ((verb === 'get' || verb === 'close') && id === undefined) throw new CliError('give the session id');
  const api = ctx.api();
  if (verb === 'get') {
    const session = await api.request<Record<string, unknown>>(
      'GET',
      `v1/agent-sessions/${encodeURIComponent(id!)}`,
    );
    emit(ctx.io, ctx.format, session, () => {
      for (const [k, v] of Object.entries(session))
        ctx.io.out(`${k.padEnd(16)}  ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    });
    return 0;
  }
  if (verb === 'close') {
    if (!(await confirm(ctx, `Close session ${id}? The agent's session token stops working.`))) {
      ctx.io.err('cancelled');
      return 1;
    }
    const closed = await api.request<Record<string, unknown>>(
      'DELETE',
      `v1/agent-sessions/${encodeURIComponent(id!)}`,
    );
    emit(ctx.io, ctx.format, closed, () => ctx.io.out(`closed session ${id}`));
    return 0;
  }
  throw new CliError('usage: nexus sessions get ID | close ID');
}
