/**
 * Helpers for the key-rotation tests (decision 0013): `nexus serve` as a real child process, HTTP
 * calls to it, and the requests that read and write sealed data (provider secrets, consent
 * verifiers, captured credentials, agent logins signed with a sealed key).
 */
import assert from 'node:assert/strict';
import { type CliProcess, fetchWithin, freePort, spawnCli } from './cli-helpers.ts';

export interface Served {
  readonly proc: CliProcess;
  readonly base: string;
  /** SIGTERM, and the exit (code 0 expected). */
  stop(): Promise<void>;
}

/** Starts `nexus serve` on a free loopback port with `env`; resolves once it logged `nexus ready`. */
export async function serve(env: Record<string, string>, args: string[] = []): Promise<Served> {
  const port = await freePort();
  const proc = spawnCli(['serve', ...args], {
    ...env,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
  });
  await proc.waitFor('stdout', /"msg":"nexus ready"/, 30_000);
  return {
    proc,
    base: `http://127.0.0.1:${port}`,
    async stop() {
      proc.kill('SIGTERM');
      const result = await proc.wait(20_000);
      assert.equal(result.code, 0, `serve exited ${result.code}\n${result.stdout}\n${result.stderr}`);
    },
  };
}

export interface Call {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

/** One HTTP call: JSON in and out, an admin key (`key`) or an agent token (`token`), or a form. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: { key?: string; token?: string; json?: unknown; form?: Record<string, string> } = {},
): Promise<Call> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.key !== undefined) headers['x-api-key'] = options.key;
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(options.form).toString();
  }
  const res = await fetchWithin(`${base}${path}`, { method, headers, body }, 15_000);
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = {};
  }
  return { status: res.status, body: parsed, text };
}

export const RETURN_URL = 'http://localhost:3000/done';

/** Two providers: an OAuth one (request-connection seals a PKCE verifier) and an API-key one (capture). */
export async function createProviders(base: string, key: string): Promise<void> {
  for (const profile of [
    {
      name: 'oauthy',
      client_id: 'client-id',
      client_secret: 'client-secret-value',
      auth_url: 'https://idp.example/authorize',
      token_url: 'https://idp.example/token',
      scopes: ['read'],
    },
    { name: 'static', auth_type: 'api_key', description: 'an API-key service' },
  ]) {
    const res = await call(base, 'POST', '/providers', { key, json: { profile } });
    assert.equal(res.status, 201, res.text);
  }
}

/** request-connection for the API-key provider, then its capture: an active connection with sealed credentials. */
export async function captureConnection(
  base: string,
  key: string,
  user: string,
  apiKey: string,
): Promise<Call> {
  const started = await call(base, 'POST', '/v1/request-connection', {
    key,
    json: { user_id: user, provider_name: 'static', return_url: RETURN_URL },
  });
  if (started.status !== 200) return started;
  return call(base, 'POST', '/v1/capture-credential', {
    json: { state: started.body.state, credentials: { api_key: apiKey } },
  });
}

/** Registers an agent; its client id and secret. */
export async function createAgent(base: string, key: string, agentId: string): Promise<{ secret: string }> {
  const res = await call(base, 'POST', '/admin/v1/agents', {
    key,
    json: { agent_id: agentId, allowed_scopes: [] },
  });
  assert.equal(res.status, 201, res.text);
  return { secret: String(res.body.client_secret) };
}

/** Client-credentials login: the access token is signed with the broker's sealed signing key. */
export function agentLogin(base: string, agentId: string, secret: string): Promise<Call> {
  return call(base, 'POST', '/oauth/token', {
    form: { grant_type: 'client_credentials', client_id: agentId, client_secret: secret },
  });
}

/** Waits until `check` holds, polling every 100 ms; fails with `what` after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
