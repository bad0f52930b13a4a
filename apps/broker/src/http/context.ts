import type { FastifyRequest } from 'fastify';
import type { AuditContext } from '../modules/audit/audit.service.ts';
import { callerContext } from '../modules/audit/audit-context.ts';

/** The audit actor and origin of an HTTP request. */
export function auditContext(request: FastifyRequest): AuditContext {
  return callerContext(request.principal, {
    ip: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
    requestId: request.id,
  });
}
