/**
 * The testbed itself (started by testbed.ts with what config.ts read of the environment): the
 * OpenID provider, the broker child process, the upstream and long-lived servers, and the control
 * API the tests drive.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../apps/broker/test/free-port.ts';
import { type OidcFixture, startOidcProvider } from '../../apps/broker/test/oidc-fixture.ts';
import { BrokerProcess } from './broker-process.ts';
import {
  closeCode,
  newCredentials,
  optionalString,
  PROVIDERS,
  providerProfiles,
  RETURN_URL,
  SCOPES,
  STRATEGIES,
  strategyOf,
  tokenTtlOf,
  WORKSPACE,
} from './catalogue.ts';
import { startGrpcServer } from './grpc-server.ts';
import {
  createVerifier,
  readBody,
  type StaticCredentials,
  type Strategy,
  sendJson,
  startUpstream,
  TokenExpiries,
} from './upstream.ts';
import { startWsServer } from './ws-server.ts';

export const log = (message: string) => process.stderr.write(`[testbed] ${message}\n`);

export class Testbed {
  /** The few variables the broker child inherits (PATH, HOME), read once at the entry point. */
  private readonly inherited: { PATH?: string | undefined; HOME?: string | undefined };
  constructor(inherited: { PATH?: string | undefined; HOME?: string | undefined }) {
    this.inherited = inherited;
  }
  private readonly dataDir = mkdtempSync(join(tmpdir(), 'nexus-testbed-'));
  private readonly adminKey = `nxa_testbed_${randomBytes(24).toString('hex')}`;
  private readonly issued: Record<Strategy, StaticCredentials[]> = {
    oauth2: [],
    header: [],
    headers: [],
    query_param: [],
    basic_auth: [],
    hmac_payload: [],
    aws_sigv4: [],
  };
  private idp!: OidcFixture;
  private broker!: BrokerProcess;
  private upstream!: Awaited<ReturnType<typeof startUpstream>>;
  private ws!: Awaited<ReturnType<typeof startWsServer>>;
  private grpc!: Awaited<ReturnType<typeof startGrpcServer>>;
  private control!: Server;
  /** connection id → the provider account that consented (oauth2 connections the testbed made). */
  private accounts = new Map<string, string>();
  private readonly expiries = new TokenExpiries();
  /** provider account → lifetime in seconds of the tokens the provider issues it (`/connect` token_ttl). */
  private readonly ttls = new Map<string, number>();
  /** The ready line's object, served again by `GET /info`. */
  private info: Record<string, unknown> = {};

  async start(): Promise<Record<string, unknown>> {
    const port = await freePort();
    const brokerUrl = `http://127.0.0.1:${port}`;
    this.idp = await startOidcProvider({
      clients: [
        {
          client_id: 'testbed-client',
          client_secret: `testbed-client-secret-${randomBytes(8).toString('hex')}`,
          token_endpoint_auth_method: 'client_secret_post',
          redirect_uris: [`${brokerUrl}/auth/callback`],
        },
      ],
    });
    const key = () => randomBytes(32).toString('base64');
    this.broker = new BrokerProcess(
      {
        PATH: this.inherited.PATH ?? '',
        HOME: this.inherited.HOME ?? this.dataDir,
        NEXUS_ENV: 'test',
        NEXUS_DATA_DIR: this.dataDir,
        NEXUS_AUTO_MIGRATE: 'true',
        HOST: '127.0.0.1',
        PORT: String(port),
        BASE_URL: brokerUrl,
        ENCRYPTION_KEY: key(),
        STATE_KEY: key(),
        USER_SECRETS_KEY: key(),
        API_KEYS: `testbed:${this.adminKey}`,
        ALLOWED_RETURN_DOMAINS: 'localhost',
        LOG_LEVEL: 'warn',
        NEXUS_UPSTREAM_TIMEOUT_SECONDS: '5',
        // The suites create many connections from one address; the SDKs' 429 handling is tested
        // against servers of their own.
        RATE_LIMIT_ENABLED: 'false',
      },
      brokerUrl,
    );
    await this.broker.start();
    const verify = createVerifier({ idp: this.idp, issued: this.issued, expiries: this.expiries });
    this.upstream = await startUpstream({ issued: this.issued, verify });
    this.ws = await startWsServer({ strategies: STRATEGIES, verify, expiries: this.expiries });
    this.grpc = await startGrpcServer({ strategies: STRATEGIES, verify, expiries: this.expiries });
    await this.registerProviders();
    const connections: Record<string, string> = {};
    for (const strategy of STRATEGIES)
      connections[strategy] = (await this.connect(strategy, WORKSPACE)).connection_id;
    const agent = await this.admin<{ agent_id: string; client_secret: string }>('POST', '/admin/v1/agents', {
      agent_id: 'tb-agent',
      allowed_scopes: SCOPES,
      allowed_providers: Object.values(PROVIDERS),
      allowed_workspaces: ['*'],
      allowed_secrets: ['*/default/db-password'],
    });
    const dbPassword = `db-${randomBytes(12).toString('hex')}`;
    await this.admin('POST', `/api/v2/secrets?user_id=${WORKSPACE}`, {
      name: 'db-password',
      value: dbPassword,
    });
    this.control = await this.startControl();
    this.info = {
      broker_url: brokerUrl,
      admin_key: this.adminKey,
      upstream_url: this.upstream.url,
      ws_url: this.ws.url,
      grpc_target: this.grpc.target,
      control_url: `http://127.0.0.1:${(this.control.address() as AddressInfo).port}`,
      oidc_issuer: this.idp.issuer,
      workspace_id: WORKSPACE,
      providers: PROVIDERS,
      connections,
      scopes: SCOPES,
      agent: { agent_id: agent.agent_id, client_id: agent.agent_id, client_secret: agent.client_secret },
      user_secrets: { 'db-password': dbPassword },
    };
    return this.info;
  }

  async close(): Promise<void> {
    this.control?.close();
    await this.broker?.stop();
    await this.upstream?.close();
    await this.ws?.close();
    await this.grpc?.close();
    await this.idp?.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** An admin call to the broker; anything but 2xx is an error that names the call. */
  private async admin<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.broker.url}${path}`, {
      method,
      headers: {
        'x-api-key': this.adminKey,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: 'manual',
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  private async registerProviders(): Promise<void> {
    for (const profile of providerProfiles(this.upstream.url, this.idp))
      await this.admin('POST', '/providers', { profile });
    for (const name of SCOPES) await this.admin('POST', '/admin/v1/scopes', { name });
    await this.admin('POST', '/admin/v1/trusted-issuers', {
      issuer: this.idp.issuer,
      use_discovery: true,
      audience: this.broker.url,
      tenant_claim: 'tenant',
    });
  }

  /** A new active connection through the real flows: the IdP's consent pages, or hosted capture. */
  async connect(
    strategy: Strategy,
    workspace: string,
    /** oauth2: the lifetime in seconds of every token the provider issues this connection. */
    tokenTtl?: number,
  ): Promise<{ connection_id: string; workspace_id: string }> {
    if (tokenTtl !== undefined && strategy !== 'oauth2')
      throw new Error('token_ttl is for oauth2 connections');
    const started = await this.admin<{ authUrl: string; state: string; connection_id: string }>(
      'POST',
      '/v1/request-connection',
      { user_id: workspace, provider_name: PROVIDERS[strategy], return_url: RETURN_URL },
    );
    if (strategy === 'oauth2') {
      const account = `acct-${randomUUID()}`;
      if (tokenTtl !== undefined) {
        // Set before the code exchange, so that the very first token is short-lived: a refresh
        // that shortened a token would look to the broker like one that failed to extend it.
        this.ttls.set(account, tokenTtl);
        this.idp.setTokenResponseRewrite((answer) => this.shorten(answer));
      }
      const callback = await this.idp.consent(started.authUrl, account);
      const res = await fetch(`${this.broker.url}${callback.pathname}${callback.search}`, {
        redirect: 'manual',
      });
      const back = new URL(res.headers.get('location') ?? 'http://invalid/');
      if (back.searchParams.get('status') !== 'success') throw new Error(`consent failed: ${back}`);
      this.accounts.set(started.connection_id, account);
    } else {
      const credentials = newCredentials(strategy);
      this.issued[strategy].push(credentials);
      const res = await fetch(`${this.broker.url}/v1/capture-credential`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ state: started.state, credentials }),
      });
      if (res.status !== 200) throw new Error(`capture failed: ${res.status} ${await res.text()}`);
    }
    return { connection_id: started.connection_id, workspace_id: workspace };
  }

  /** Checks the credential of every open WebSocket and gRPC stream again; resolves to how many ended. */
  private async recheck(): Promise<number> {
    const [ws, grpc] = await Promise.all([this.ws.recheck(), this.grpc.recheck()]);
    return ws + grpc;
  }

  /**
   * The provider's token answer for an account with a testbed lifetime: `expires_in` says it, and
   * the testbed servers refuse the access token once it has passed. The account is the id token's
   * subject (the provider issues one with every answer, the scope having `openid`).
   */
  private shorten(answer: Record<string, unknown>): Record<string, unknown> {
    const { access_token, id_token } = answer;
    if (typeof access_token !== 'string' || typeof id_token !== 'string') return answer;
    const claims = JSON.parse(Buffer.from(id_token.split('.')[1] ?? '', 'base64url').toString()) as {
      sub?: string;
    };
    const seconds = claims.sub === undefined ? undefined : this.ttls.get(claims.sub);
    if (seconds === undefined) return answer;
    this.expiries.expireAt(access_token, Date.now() + seconds * 1000);
    return { ...answer, expires_in: seconds };
  }

  private startControl(): Promise<Server> {
    const routes: Record<string, (body: Record<string, unknown>) => Promise<unknown>> = {
      'GET /info': async () => this.info,
      'GET /stats': async () => ({
        idp: { ...this.idp.counts },
        upstream: this.upstream.stats(),
        broker: { starts: this.broker.starts },
        ws: this.ws.stats(),
        grpc: this.grpc.stats(),
      }),
      'POST /upstream/reject-next': async (body) => {
        this.upstream.rejectNext(strategyOf(body.strategy), Number(body.count ?? 1));
        return { ok: true };
      },
      'POST /connect': async (body) =>
        this.connect(
          strategyOf(body.strategy),
          typeof body.workspace_id === 'string' ? body.workspace_id : WORKSPACE,
          tokenTtlOf(body.token_ttl),
        ),
      'POST /idp/revoke': async (body) => {
        const account = this.accounts.get(String(body.connection_id));
        if (account === undefined) throw new Error('not an oauth2 connection made by the testbed');
        await this.idp.revokeAllGrants(account);
        return { ok: true, ended: await this.recheck() };
      },
      'POST /idp/expire': async (body) => {
        const token = await this.admin<{ access_token?: string; credentials?: { access_token?: string } }>(
          'GET',
          `/v1/token/${encodeURIComponent(String(body.connection_id))}`,
        );
        const access_token = token.access_token ?? token.credentials?.access_token;
        if (typeof access_token !== 'string') throw new Error('not an oauth2 connection');
        this.expiries.expireAt(access_token, Date.now());
        return { ok: true, ended: await this.recheck() };
      },
      'POST /ws/drop': async (body) => ({
        dropped: this.ws.drop({
          label: optionalString(body.label),
          code: body.code === undefined ? undefined : closeCode(body.code),
          reason: optionalString(body.reason),
        }),
      }),
      'POST /ws/refuse-next': async (body) => {
        this.ws.refuseNext({
          label: optionalString(body.label),
          count: Number(body.count ?? 1),
          status: Number(body.status ?? 503),
        });
        return { ok: true };
      },
      'POST /ws/mute': async (body) => ({
        muted: this.ws.mute({ label: optionalString(body.label), muted: body.muted !== false }),
      }),
      'POST /grpc/drop': async (body) => ({ dropped: this.grpc.drop({ label: optionalString(body.label) }) }),
      'POST /grpc/refuse-next': async (body) => {
        this.grpc.refuseNext(Number(body.count ?? 1));
        return { ok: true };
      },
      'POST /broker/stop': async () => {
        await this.broker.stop();
        return { ok: true };
      },
      'POST /broker/start': async () => {
        await this.broker.start();
        return { ok: true };
      },
      'POST /user-token': async (body) => ({
        token: await this.idp.issueUserToken({
          resource: this.broker.url,
          accountId: String(body.account_id ?? WORKSPACE),
          claims: { permissions: SCOPES, ...((body.claims as Record<string, unknown>) ?? {}) },
        }),
      }),
    };
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const route = routes[`${req.method} ${new URL(req.url ?? '/', 'http://x').pathname}`];
      if (route === undefined) return sendJson(res, 404, { error: 'not_found' });
      readBody(req)
        .then((raw) => route(raw.length === 0 ? {} : (JSON.parse(raw.toString()) as Record<string, unknown>)))
        .then(
          (result) => sendJson(res, 200, result),
          (error: Error) => sendJson(res, 400, { error: 'control_failed', message: error.message }),
        );
    });
    return new Promise((done) => server.listen(0, '127.0.0.1', () => done(server)));
  }
}
