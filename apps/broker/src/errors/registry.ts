import { cryptoErrors } from '../crypto/crypto.errors.ts';
import { adminKeyErrors } from '../modules/admin-keys/admin-keys.errors.ts';
import { agentErrors } from '../modules/agents/agents.errors.ts';
import { auditErrors } from '../modules/audit/audit.errors.ts';
import { catalogErrors } from '../modules/catalog/catalog.errors.ts';
import { connectErrors, connectReturnErrors } from '../modules/connect/connect.errors.ts';
import { connectionErrors } from '../modules/connections/connections.errors.ts';
import { consentErrors, consentReturnErrors } from '../modules/consent/consent.errors.ts';
import { eventErrors } from '../modules/events/events.errors.ts';
import { mcpErrors } from '../modules/mcp/mcp.errors.ts';
import { providerErrors } from '../modules/providers/providers.errors.ts';
import { proxyErrors } from '../modules/proxy/proxy.errors.ts';
import { secretErrors } from '../modules/secrets/secrets.errors.ts';
import { tokenExchangeErrors } from '../modules/token-exchange/token-exchange.errors.ts';
import { trustedIssuerErrors } from '../modules/token-exchange/trusted-issuers.errors.ts';
import { userSecretErrors } from '../modules/user-secrets/user-secrets.errors.ts';
import { commonErrors } from './common.errors.ts';
import type { ErrorCatalog, ErrorSpec, ReturnUrlErrorCatalog, ReturnUrlErrorSpec } from './nexus-error.ts';

/** Every module's catalogue. A module that declares errors adds its catalogue here. */
export const CATALOGUES: Readonly<Record<string, ErrorCatalog>> = {
  common: commonErrors,
  crypto: cryptoErrors,
  admin_keys: adminKeyErrors,
  agents: agentErrors,
  token_exchange: tokenExchangeErrors,
  trusted_issuers: trustedIssuerErrors,
  audit: auditErrors,
  providers: providerErrors,
  catalog: catalogErrors,
  connections: connectionErrors,
  consent: consentErrors,
  connect: connectErrors,
  events: eventErrors,
  secrets: secretErrors,
  user_secrets: userSecretErrors,
  proxy: proxyErrors,
  mcp: mcpErrors,
};

/** All codes with their module; throws when two modules declare the same code. */
export function allErrorCodes(): Map<string, ErrorSpec & { module: string }> {
  const out = new Map<string, ErrorSpec & { module: string }>();
  for (const [module, catalogue] of Object.entries(CATALOGUES)) {
    for (const [code, spec] of Object.entries(catalogue)) {
      const existing = out.get(code);
      if (existing)
        throw new Error(`error code ${code} is declared by both ${existing.module} and ${module}`);
      out.set(code, { ...spec, module });
    }
  }
  return out;
}

/**
 * Codes that reach an application in a redirect instead of an answer (the consent callback's
 * `status=failed&error=<code>`). A code may also be an HTTP code (`provider_unavailable`): the
 * documentation says so.
 */
export const RETURN_URL_CATALOGUES: Readonly<Record<string, ReturnUrlErrorCatalog>> = {
  consent: consentReturnErrors,
  connect: connectReturnErrors,
};

/** All return_url codes with their module; throws when two modules declare the same code. */
export function allReturnUrlCodes(): Map<string, ReturnUrlErrorSpec & { module: string }> {
  const out = new Map<string, ReturnUrlErrorSpec & { module: string }>();
  for (const [module, catalogue] of Object.entries(RETURN_URL_CATALOGUES)) {
    for (const [code, spec] of Object.entries(catalogue)) {
      const existing = out.get(code);
      if (existing)
        throw new Error(`return_url code ${code} is declared by both ${existing.module} and ${module}`);
      out.set(code, { ...spec, module });
    }
  }
  return out;
}
