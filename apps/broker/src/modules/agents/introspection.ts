import { decodeProtectedHeader } from 'jose';
import type { Principal } from '../../auth/principal.ts';
import type { AgentsService } from './agents.service.ts';

export type IntrospectionAnswer = { active: boolean } & Record<string, unknown>;

const INACTIVE: IntrospectionAnswer = Object.freeze({ active: false });

/**
 * Session tokens are token-exchange/'s (its sessions service): it is passed in, so the
 * authorization server depends on no other module's code for them.
 */
export interface SessionTokenIntrospection {
  introspect(token: string): Promise<IntrospectionAnswer>;
}

/**
 * RFC 7662 introspection of the broker's own tokens: agent access tokens (`typ: at+jwt`) and session
 * tokens (`typ: nexus-session+jwt`), active only while their signature, expiry, agent (and for a
 * session its row) agree.
 *
 * Who asks decides what it may learn (RFC 7662 §2.2 and §4): an admin key, about any token; an
 * agent, only about the tokens issued to it, its own access tokens and the session tokens it holds
 * (`client_id` is its `agent_id`). Any other token is `active: false`, the answer for a token that
 * does not exist, so an agent cannot use the endpoint to learn whether a token it came across is
 * live. An agent's grant names connections and users, not tokens: it gives no right to introspect
 * another agent's tokens, which resource servers verify offline (JWKS) or with an admin key.
 */
export function createIntrospection(deps: {
  sessions: SessionTokenIntrospection;
  agents: Pick<AgentsService, 'accessTokenClaims'>;
}) {
  async function answer(token: string): Promise<IntrospectionAnswer> {
    let typ: unknown;
    try {
      typ = decodeProtectedHeader(token).typ;
    } catch {
      return INACTIVE;
    }
    if (typ === 'at+jwt') {
      const claims = await deps.agents.accessTokenClaims(token);
      return claims === null ? INACTIVE : { ...claims, active: true, token_type: 'Bearer' };
    }
    return deps.sessions.introspect(token);
  }

  /** What `caller` may learn about `token` (`token_type_hint` is not needed: RFC 7662 §2.1). */
  return async function introspect(caller: Principal, token: string): Promise<IntrospectionAnswer> {
    const result = await answer(token);
    if (!result.active || caller.kind === 'admin') return result;
    return result.client_id === caller.agentId ? result : INACTIVE;
  };
}

export type Introspection = ReturnType<typeof createIntrospection>;
