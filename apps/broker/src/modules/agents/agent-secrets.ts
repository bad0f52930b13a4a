/**
 * Agents' client secrets: `nxs_<secret id>_<43 random chars>`, stored as their SHA-256 (client-auth.ts
 * finds one by its id), issued, rotated with an overlap, revoked.
 */
import { createHash, randomBytes } from 'node:crypto';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { type AgentViews, iso } from './agent-views.ts';
import { agentErrors } from './agents.errors.ts';
import type { AgentsStore } from './agents.store.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export function createAgentSecrets(deps: {
  store: Pick<AgentsStore, 'insertSecret' | 'expireSecrets' | 'revokeSecret'>;
  views: Pick<AgentViews, 'liveRow'>;
  audit: Pick<AuditService, 'record'>;
  now: () => number;
}) {
  const { store, views, audit, now } = deps;

  /** A new secret of the agent, stored as its hash; the value is returned once, here. */
  async function newSecret(agentUuid: string, t: number): Promise<{ id: string; secret: string }> {
    const id = randomBytes(8).toString('hex');
    const secret = `nxs_${id}_${randomBytes(32).toString('base64url')}`;
    await store.insertSecret({
      id,
      agent_uuid: agentUuid,
      secret_hash: sha256(secret),
      created_at: t,
      expires_at: null,
      revoked_at: null,
    });
    return { id, secret };
  }

  return {
    newSecret,

    /** A new client secret; the live ones keep working for `overlapSeconds`, then stop. */
    async rotateSecret(ctx: AuditContext, ref: string, overlapSeconds: number) {
      const row = await views.liveRow(ref);
      const t = now();
      await store.expireSecrets(row.id, t + overlapSeconds * 1000);
      const secret = await newSecret(row.id, t);
      await audit.record(ctx, {
        action: 'agent.secret_rotated',
        resourceType: 'agent',
        resourceId: row.id,
        details: { agent_id: row.agent_id, secret_id: secret.id, overlap_seconds: overlapSeconds },
      });
      return {
        secret_id: secret.id,
        client_secret: secret.secret,
        previous_expire_at: iso(t + overlapSeconds * 1000)!,
      };
    },

    /**
     * Revokes a secret at once, and ends the access tokens and sessions the agent holds (a leaked
     * secret may have obtained some); its other live secrets log in again.
     */
    async revokeSecret(ctx: AuditContext, ref: string, secretId: string): Promise<void> {
      const row = await views.liveRow(ref);
      if (!(await store.revokeSecret(row.id, secretId, now())))
        throw errorFrom(agentErrors, 'agent_secret_not_found');
      await audit.record(ctx, {
        action: 'agent.secret_revoked',
        resourceType: 'agent',
        resourceId: row.id,
        details: { agent_id: row.agent_id, secret_id: secretId, tokens_ended: true },
      });
    },
  };
}
