/**
 * What `nexus dev` registers in its broker, the same way on every start: the provider `demo`,
 * pointing at the demo identity provider of this run (its port and client secret change from one
 * run to the next, so the profile is replaced, keeping the provider's id), and the agent
 * `demo-agent`, allowed that provider for the user `demo-user` only.
 *
 * The agent's client secret is stored as a hash, so it cannot be read back: the dev command keeps
 * it in `<data dir>/dev-agent.json` (mode 0600) and shows it again on the next start, after
 * checking that it still works; when it does not (the file is gone, or the secret was rotated),
 * a new one is issued.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Container } from '../../container.ts';
import { profileInput } from '../../modules/providers/providers.schemas.ts';

export const DEMO_PROVIDER = 'demo';
export const DEMO_AGENT = 'demo-agent';
export const DEMO_USER = 'demo-user';
/** The broker's client id at the demo identity provider. */
export const DEMO_CLIENT_ID = 'nexus-dev';

const ACTOR = { actor: 'system:dev' };

export interface DemoRegistration {
  readonly providerId: string;
  readonly providerCreated: boolean;
  readonly agentId: string;
  readonly agentCreated: boolean;
  /** The demo agent's own client secret (a development credential, shown on the `/dev` pages). */
  readonly agentSecret: string;
}

type Services = Pick<Container, 'providers' | 'agents' | 'config'>;

/** Registers (or updates) the demo provider and agent; idempotent across restarts. */
export async function registerDemo(
  container: Services,
  idp: { issuer: string; clientSecret: string },
): Promise<DemoRegistration> {
  const { providerId, providerCreated } = await registerProvider(container, idp);
  const agent = await registerAgent(container);
  return { providerId, providerCreated, ...agent };
}

async function registerProvider(
  { providers }: Services,
  idp: { issuer: string; clientSecret: string },
): Promise<{ providerId: string; providerCreated: boolean }> {
  const profile = profileInput.parse({
    name: DEMO_PROVIDER,
    description: 'The demo OpenID provider of `nexus dev` (loopback only, a demo account).',
    client_id: DEMO_CLIENT_ID,
    client_secret: idp.clientSecret,
    issuer: idp.issuer,
    enable_discovery: true,
    scopes: ['openid', 'profile', 'email'],
  });
  const existing = await providers.resolve(DEMO_PROVIDER).catch(() => undefined);
  if (existing !== undefined) {
    await providers.replace(ACTOR, existing.id, profile);
    return { providerId: existing.id, providerCreated: false };
  }
  const { id } = await providers.create(ACTOR, profile);
  return { providerId: id, providerCreated: true };
}

async function registerAgent({
  agents,
  config,
}: Services): Promise<{ agentId: string; agentCreated: boolean; agentSecret: string }> {
  const file = join(config.dataDir, 'dev-agent.json');
  const existing = await agents.get(DEMO_AGENT).catch(() => undefined);
  if (existing === undefined) {
    const created = await agents.create(ACTOR, {
      agent_id: DEMO_AGENT,
      description: 'The demo agent of `nexus dev`.',
      allowed_scopes: [],
      allowed_providers: [DEMO_PROVIDER],
      allowed_workspaces: [DEMO_USER],
      generate_secret: true,
    });
    const secret = created.client_secret!;
    keepSecret(file, secret);
    return { agentId: created.id, agentCreated: true, agentSecret: secret };
  }
  const kept = readSecret(file);
  if (kept !== undefined) {
    const works = await agents
      .authenticateClientPrincipal(ACTOR, { clientId: DEMO_AGENT, clientSecret: kept })
      .then(
        () => true,
        () => false,
      );
    if (works) return { agentId: existing.id, agentCreated: false, agentSecret: kept };
  }
  const rotated = await agents.rotateSecret(ACTOR, DEMO_AGENT, 0);
  keepSecret(file, rotated.client_secret);
  return { agentId: existing.id, agentCreated: false, agentSecret: rotated.client_secret };
}

function readSecret(file: string): string | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { client_secret?: unknown };
    return typeof parsed.client_secret === 'string' ? parsed.client_secret : undefined;
  } catch {
    return undefined;
  }
}

function keepSecret(file: string, secret: string): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify({ agent_id: DEMO_AGENT, client_secret: secret }, null, 2)}\n`, {
    mode: 0o600,
  });
  chmodSync(file, 0o600);
}
