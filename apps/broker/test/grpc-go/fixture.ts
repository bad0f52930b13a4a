/**
 * The broker side of the Go client test (run.sh): a test broker with a real OpenID provider and
 * its gRPC listener, plus a small loopback HTTP helper standing in for the user's browser (consent
 * at the provider, then the broker's callback) and for the test's clock and fault switches.
 * Prints one JSON line `{grpc_address, helper_url, admin_key, agent_token, other_agent_token}`,
 * then runs until stdin closes or SIGTERM.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startGrpc } from '../grpc-client.ts';
import { createAgentWithToken, json } from '../harness.ts';
import { Scenario } from '../oauth-scenario.ts';
import type { OidcFault } from '../oidc-fixture.ts';

const s = new Scenario();
await s.start();
const grpc = await startGrpc(s.broker);
const providers = json<{ id: string; name: string }[]>(
  await s.call({ method: 'GET', url: '/providers' }, 200),
);
const basic = providers.find((p) => p.name === 'idp-basic')!.id;
await s.call({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'crm:read' } }, 201);

async function agentToken(agentId: string, workspace: string): Promise<string> {
  const agent = await createAgentWithToken(s.broker, agentId, {
    allowed_scopes: ['crm:read'],
    allowed_providers: [basic],
    allowed_workspaces: [workspace],
  });
  return agent.token;
}

const agent = await agentToken('go-bot', 'go-user');
const other = await agentToken('go-other-bot', 'go-other-user');

const helper = createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
  const reply = (status: number, value: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  try {
    if (req.method === 'POST' && req.url === '/consent') {
      // The user's browser: the provider's login and consent pages, then the broker's callback.
      const callback = await s.idp.consent(body.auth_url as string);
      const back = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
      const location = new URL(back.headers.location as string);
      return reply(200, Object.fromEntries(location.searchParams));
    }
    if (req.method === 'POST' && req.url === '/advance') {
      s.clock += Number(body.ms ?? 3_000);
      return reply(200, { clock: s.clock });
    }
    if (req.method === 'POST' && req.url === '/revoke-grants') {
      await s.idp.revokeAllGrants();
      return reply(200, {});
    }
    if (req.method === 'POST' && req.url === '/fault') {
      s.idp.setTokenEndpointFault(body.fault as OidcFault);
      return reply(200, {});
    }
    if (req.method === 'GET' && req.url?.startsWith('/rest-token/')) {
      const res = await s.call({ method: 'GET', url: `/v1/token/${req.url.slice('/rest-token/'.length)}` });
      return reply(res.statusCode, JSON.parse(res.body));
    }
    reply(404, { error: 'not_found' });
  } catch (error) {
    reply(500, { error: String(error) });
  }
});
await new Promise<void>((resolve) => helper.listen(0, '127.0.0.1', resolve));

process.stdout.write(
  `${JSON.stringify({
    grpc_address: grpc.address,
    helper_url: `http://127.0.0.1:${(helper.address() as AddressInfo).port}`,
    admin_key: s.broker.adminKey,
    agent_token: agent,
    other_agent_token: other,
  })}\n`,
);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  helper.close();
  await grpc.server.close(1_000);
  await s.close();
  process.exit(0);
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
