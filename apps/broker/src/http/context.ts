import type { FastifyRequest } from 'fastify';
import type { AuditContext } from '../modules/audit/audit.service.ts';

/** The audit actor and origin of an HTTP request. */
export function auditContext(request: FastifyRequest): AuditContext {
  const p = request.principal;
  return {
    actor: p === undefined ? 'anonymous' : p.kind === 'agent' ? `agent:${p.agentId}` : `admin-key:${p.name}`,
    ip: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
    requestId: request.id,
  };
}
