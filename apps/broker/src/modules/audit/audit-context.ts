import type { Principal } from '../../auth/principal.ts';
import type { AuditContext } from './audit.service.ts';

/** Where one call came from, as its transport (an HTTP request, a gRPC call) knows it. */
export interface CallOrigin {
  readonly ip: string;
  readonly userAgent: string | null;
  readonly requestId: string;
}

/**
 * The audit context of one call: its actor (`agent:<agent_id>`, `admin-key:<name>`, or
 * `anonymous` before authentication) and its origin. REST (http/context.ts) and gRPC build it
 * here, so that both name the same caller the same way.
 */
export function callerContext(principal: Principal | undefined, origin: CallOrigin): AuditContext {
  const p = principal;
  return {
    actor: p === undefined ? 'anonymous' : p.kind === 'agent' ? `agent:${p.agentId}` : `admin-key:${p.name}`,
    ip: origin.ip,
    userAgent: origin.userAgent,
    requestId: origin.requestId,
  };
}
