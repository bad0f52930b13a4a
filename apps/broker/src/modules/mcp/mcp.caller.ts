import type { AgentPrincipal } from '../../auth/principal.ts';
import { commonError } from '../../errors/common.errors.ts';
import { grantNames } from '../agents/grants.ts';
import type { AuditContext } from '../audit/audit.service.ts';
import { usableUserId } from '../token-exchange/user-tokens.ts';

/**
 * Who calls a tool: the agent behind the access token of the HTTP request that carried the call
 * (each request is authenticated again, so a deactivated agent stops at once), its audit context,
 * and the user it acts for: the user of its on-behalf-of session (`X-Nexus-Session`), else the one
 * the MCP client named (`X-Nexus-User-ID` on `/mcp`, or `NEXUS_USER_ID` for `nexus mcp`). Without
 * a session, a tool's `user_id` argument may name another user within the agent's grant.
 */
export interface McpCaller {
  readonly principal: AgentPrincipal;
  readonly ctx: AuditContext;
  /**
   * The agent's access token for the in-process call to the credential proxy; never shown. The
   * agent's own, or, for a caller with a trusted issuer's token, one the broker signs in process.
   */
  readonly proxyToken: () => Promise<string>;
  readonly ip: string;
  readonly actingUser: string | undefined;
  /** The user comes from an on-behalf-of session or a trusted issuer's token: no tool may act for another one. */
  readonly onBehalfOf: boolean;
  /** The trusted issuer whose token the caller presented (NEXUS_MCP_ISSUERS), if it came so. */
  readonly viaIssuer?: string;
}

/** The key under which routes hand the caller to tool handlers (`AuthInfo.extra`). */
export const CALLER_KEY = 'nexusCaller';

/** The caller of a tool call, from the SDK's `authInfo`; a call without one is refused. */
export function callerOf(authInfo: { extra?: Record<string, unknown> } | undefined): McpCaller {
  const caller = authInfo?.extra?.[CALLER_KEY] as McpCaller | undefined;
  if (caller === undefined) throw commonError('unauthorized');
  return caller;
}

/**
 * Whether a person's user id (from a trusted issuer's token or an on-behalf-of session) names one
 * person: not empty, and an id a user token may carry (`usableUserId`: not `*`, which a grant
 * reads as "every user", no control character, no unpaired surrogate).
 */
export function usablePerson(userId: string): boolean {
  return userId !== '' && usableUserId(userId);
}

/**
 * The agent's principal narrowed to one person (an on-behalf-of session, a trusted issuer's token):
 * exactly that person's workspace when the grant reaches it, else none, so every service the tools
 * call finds the person's own connections only, whatever else the agent may reach. A user id that
 * a grant would read as a wildcard (`*`) narrows to nothing: it names no one.
 */
export function pinnedTo(p: AgentPrincipal, user: string): AgentPrincipal {
  const reaches = usablePerson(user) && grantNames(p.allowedWorkspaces, user);
  return { ...p, allowedWorkspaces: reaches ? [user] : [] };
}
