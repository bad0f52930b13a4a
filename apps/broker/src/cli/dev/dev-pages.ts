/**
 * The broker's `/dev` pages, added to the app by `nexus dev` only (never by `nexus serve`): they
 * play the application that asks for a connection.
 *
 * - `GET /dev`: what is about to happen, and one button;
 * - `GET /dev/connect`: starts a consent for `demo-user` at the demo provider, as an app's
 *   `POST /v1/request-connection` would, and sends the browser to the provider's `authUrl`;
 * - `GET /dev/done`: the return URL; shows the token call to make, with the demo agent's own
 *   development credentials (and no other secret: the connection's token is fetched by the reader).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { NexusError } from '../../errors/nexus-error.ts';
import { auditContext } from '../../http/context.ts';
import type { ConnectionsService } from '../../modules/connections/connections.service.ts';
import type { ConsentService } from '../../modules/consent/consent.service.ts';
import { type DemoPage, demoPage, escapeHtml } from './demo-page.ts';
import { DEMO_AGENT, DEMO_PROVIDER, DEMO_USER } from './demo-setup.ts';

const BANNER = 'this broker runs nexus dev: development mode, a demo identity provider, demo credentials.';
const CONNECTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ERROR_CODE = /^[a-z_]{1,64}$/;

export interface DevPagesDeps {
  readonly baseUrl: string;
  readonly providerId: string;
  readonly agentSecret: string;
  readonly consent: Pick<ConsentService, 'start'>;
  readonly connections: Pick<ConnectionsService, 'describe'>;
}

/** Adds the `/dev` pages to a broker that is not listening yet. */
export function devPages(app: FastifyInstance, deps: DevPagesDeps): void {
  const options = { config: { auth: 'public' as const }, schema: { hide: true } };
  const send = (reply: FastifyReply, status: number, page: DemoPage) =>
    reply.code(status).headers(page.headers).send(page.html);

  app.get('/dev', options, async (_request, reply) => send(reply, 200, startPage()));

  app.get('/dev/connect', options, async (request, reply) => {
    try {
      const started = await deps.consent.start(auditContext(request), {
        workspaceId: DEMO_USER,
        providerRef: DEMO_PROVIDER,
        returnUrl: `${deps.baseUrl}/dev/done`,
        action: 'nexus dev',
      });
      return reply.redirect(started.authUrl, 303);
    } catch (error) {
      if (!(error instanceof NexusError)) throw error;
      return send(reply, error.status, failedPage(error.code, error.message));
    }
  });

  app.get('/dev/done', options, async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const id = typeof query.connection_id === 'string' ? query.connection_id : '';
    if (query.status !== 'success' || !CONNECTION_ID.test(id)) {
      const code = typeof query.error === 'string' && ERROR_CODE.test(query.error) ? query.error : 'failed';
      return send(reply, 200, failedPage(code, 'The consent did not complete.'));
    }
    const connection = await deps.connections.describe(id);
    if (connection === undefined || connection.provider_id !== deps.providerId)
      return send(reply, 404, failedPage('connection_not_found', 'No demo connection has this id.'));
    return send(reply, 200, donePage(deps.baseUrl, id, connection.status, deps.agentSecret));
  });
}

function startPage(): DemoPage {
  return demoPage(
    'Nexus dev',
    BANNER,
    `<h1>See a consent happen</h1>
<p>You play a user, <code>${DEMO_USER}</code>, whom an agent asks to connect an account at an identity
provider. Nexus sends you to the provider (a demo one running beside this broker), you sign in with
the demo account and allow access, and Nexus stores the tokens. The agent then fetches a fresh
access token from Nexus; it never holds the refresh token.</p>
<ol><li>Sign in at the demo identity provider (the form is filled in: user <code>demo</code>,
password <code>demo</code>).</li><li>Allow access.</li><li>Back here: the call your agent makes.</li></ol>
<a class="button" href="/dev/connect">Connect the demo account</a>`,
  );
}

function failedPage(code: string, message: string): DemoPage {
  return demoPage(
    'Nexus dev: not connected',
    BANNER,
    `<h1>Not connected</h1><p class="error" role="alert"><code>${escapeHtml(code)}</code> ${escapeHtml(message)}</p>
<a class="button" href="/dev/connect">Try again</a>`,
  );
}

/** The commands and code shown after a consent; dev-command.test.ts runs the shell block as shown. */
export function tokenCall(baseUrl: string, connectionId: string, agentSecret: string) {
  const curl = `TOKEN=$(curl -s -u '${DEMO_AGENT}:${agentSecret}' -d grant_type=client_credentials ${baseUrl}/oauth/token \\
  | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')
curl -s -H "Authorization: Bearer $TOKEN" ${baseUrl}/v1/token/${connectionId}`;
  const sdk = `import { NexusClient } from '@nexus-broker/sdk';

const nexus = new NexusClient({
  baseUrl: '${baseUrl}',
  clientId: '${DEMO_AGENT}',
  clientSecret: '${agentSecret}',
});
const { access_token, expires_at } = await nexus.getToken('${connectionId}');`;
  return { curl, sdk };
}

function donePage(baseUrl: string, connectionId: string, status: string, agentSecret: string): DemoPage {
  const { curl, sdk } = tokenCall(baseUrl, connectionId, agentSecret);
  return demoPage(
    'Nexus dev: connected',
    BANNER,
    `<h1>Connected</h1>
<p class="ok" role="status">The demo account is connected: connection <code id="connection-id">${escapeHtml(connectionId)}</code>,
status <code>${escapeHtml(status)}</code>, for user <code>${DEMO_USER}</code> at provider <code>${DEMO_PROVIDER}</code>.</p>
<h2>The call your agent makes</h2>
<p>The agent <code>${DEMO_AGENT}</code> logs in with its client credentials (OAuth client credentials
at <code>/oauth/token</code>), then asks for the connection's access token. Nexus refreshes it
first when it is about to expire.</p>
<pre id="curl">${escapeHtml(curl)}</pre>
<h2>The same with the TypeScript SDK</h2>
<pre id="sdk">${escapeHtml(sdk)}</pre>
<p class="note">The secret shown is the demo agent's own development credential, kept in
<code>dev-agent.json</code> in the data directory. The refresh token never leaves the broker.</p>
<a class="button" href="/dev">Start again</a>`,
  );
}
