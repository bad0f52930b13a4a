/**
 * Starts the shared SDK testbed (sdks/testbed/testbed.ts: a real OpenID provider, a real
 * `nexus serve` on a temporary SQLite file and an upstream API that checks credentials) and
 * exposes its JSON line plus the control API.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

const REPO = resolve(import.meta.dirname, '../../..');
const NODE = process.env.NEXUS_TEST_NODE ?? resolve(REPO, 'node_modules/.bin/node');
const TESTBED = resolve(REPO, 'sdks/testbed/testbed.ts');

export type StrategyName =
  | 'oauth2'
  | 'header'
  | 'headers'
  | 'query_param'
  | 'basic_auth'
  | 'hmac_payload'
  | 'aws_sigv4';
export const STRATEGIES: readonly StrategyName[] = [
  'oauth2',
  'header',
  'headers',
  'query_param',
  'basic_auth',
  'hmac_payload',
  'aws_sigv4',
];

export interface TestbedInfo {
  broker_url: string;
  admin_key: string;
  upstream_url: string;
  ws_url: string;
  control_url: string;
  oidc_issuer: string;
  workspace_id: string;
  providers: Record<StrategyName, string>;
  connections: Record<StrategyName, string>;
  scopes: string[];
  agent: { agent_id: string; client_id: string; client_secret: string };
  user_secrets: Record<string, string>;
}

/** The testbed WebSocket server's counters of one label (sdks/testbed/README.md). */
export interface WsLabelStats {
  handshakes: { at: number; status: number }[];
  opened: number;
  open: number;
  closed: Record<string, number>;
  messages: number;
  pings: number;
  reauth_ok: number;
  reauth_refused: number;
  unauthorized: number;
  credentials: number;
}

export interface Stats {
  idp: { authorization_code: number; refresh_token: number; revocation: number };
  upstream: Record<StrategyName, { accepted: number; rejected: number }>;
  broker: { starts: number };
  ws: Record<string, WsLabelStats>;
}

export interface Testbed {
  info: TestbedInfo;
  control<T = unknown>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
  stats(): Promise<Stats>;
  /**
   * A new active connection through the real flows, in a workspace of its own unless one is named
   * (a new connection replaces the workspace's previous one for that provider).
   * `tokenTtl` (oauth2): the lifetime in seconds of every token the provider issues it.
   */
  connect(strategy: StrategyName, workspaceId?: string, tokenTtl?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startTestbed(): Promise<Testbed> {
  const child: ChildProcess = spawn(NODE, [TESTBED], { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr.push(String(chunk));
    if (stderr.length > 200) stderr.shift();
  });
  const lines = createInterface({ input: child.stdout! });
  const info = await new Promise<TestbedInfo>((done, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`testbed not ready after 90 s:\n${stderr.join('')}`)),
      90_000,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`testbed exited (${code}) before it was ready:\n${stderr.join('')}`));
    });
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        done(JSON.parse(line) as TestbedInfo);
      } catch (error) {
        fail(error);
      }
    });
  });
  child.removeAllListeners('exit');

  const control = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
    const response = await fetch(info.control_url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`testbed ${method} ${path}: ${response.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };

  return {
    info,
    control,
    async stats() {
      const raw = await control<Stats>('GET', '/stats');
      // The upstream counts a strategy from its first request on.
      for (const strategy of STRATEGIES) raw.upstream[strategy] ??= { accepted: 0, rejected: 0 };
      return raw;
    },
    async connect(strategy, workspaceId, tokenTtl) {
      const r = await control<{ connection_id: string }>('POST', '/connect', {
        strategy,
        workspace_id: workspaceId ?? `sdk-ts-${randomBytes(6).toString('hex')}`,
        ...(tokenTtl === undefined ? {} : { token_ttl: tokenTtl }),
      });
      return r.connection_id;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((done) => child.once('exit', done));
      child.stdin!.end();
      child.kill('SIGTERM');
      await exited;
    },
  };
}
