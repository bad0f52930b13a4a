import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import { auditContext } from '../../http/context.ts';
import { errorResponses } from '../../http/schemas.ts';
import { connectionConfig } from './connection-config.schema.ts';
import type { CallbackOutcome, ConsentService } from './consent.service.ts';
import { requestAction } from './request-action.schema.ts';
import { verifyField } from './verify.schema.ts';

const scopes = z
  .array(
    z
      .string()
      .min(1)
      .max(256)
      .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/),
  )
  .max(100);
const returnUrl = z
  .url({ protocol: /^https?$/ })
  .max(2048)
  .describe('Where the user is sent back; must be on ALLOWED_RETURN_DOMAINS');
const workspace = z.string().trim().min(1).max(200);
const providerRef = z.string().min(1).max(64);
/** `null` and absent mean the provider's defaults, as an empty list does (the original Go SDK sends `null`). */
const requestedScopes = scopes
  .nullish()
  .describe("Scopes to request; the provider's defaults when empty, null or absent");

const METADATA_MAX_BYTES = 8 * 1024;
/** The original Go SDK's `metadata`: any JSON (its depth is bounded for every body), at most 8 KiB. */
const metadata = z
  .unknown()
  .refine((v) => v === undefined || Buffer.byteLength(JSON.stringify(v)) <= METADATA_MAX_BYTES, {
    message: `at most ${METADATA_MAX_BYTES} bytes of JSON`,
  })
  .describe(
    'Any JSON from the caller (the original Go SDK sends it), at most 8 KiB. Accepted, not stored; the audit event records its top-level key names only.',
  );

const startResponse = z.object({
  authUrl: z.string().describe('Send the user here'),
  state: z.string(),
  scopes: z.array(z.string()),
  provider_id: z.string(),
});

/**
 * A callback parameter, as any provider may send it: the handler reads the raw query, so nothing
 * here may refuse one (a JSON 400 would leave the user on an API answer and the flow open). The
 * listener's URL limit bounds it.
 */
const callbackParam = () => z.union([z.string(), z.array(z.string())]).optional();

const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

/** The only HTML the callback ever renders: when the return URL itself cannot be trusted. */
function page(outcome: Extract<CallbackOutcome, { kind: 'page' }>): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(outcome.title)}</title></head><body><h1>${escapeHtml(outcome.title)}</h1><p>${escapeHtml(outcome.message)}</p></body></html>`;
}

export function consentRoutes(
  app: FastifyInstance,
  deps: { consent: ConsentService; callbackPath: string },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { consent } = deps;

  r.post(
    '/v1/request-connection',
    {
      config: { auth: 'agent' },
      schema: {
        operationId: 'requestConnection',
        tags: ['agent API'],
        summary: 'Start connecting a user account: a pending connection and the URL to send the user to',
        body: z
          .object({
            user_id: workspace.describe('The user (workspace) the connection belongs to'),
            provider_name: providerRef.optional().describe('Provider name or alias'),
            provider_id: providerRef.optional().describe('Provider id (a name or alias is accepted too)'),
            scopes: requestedScopes,
            return_url: returnUrl,
            metadata: metadata.optional(),
            action: requestAction.optional(),
            connection_config: connectionConfig.optional(),
            verify: verifyField,
          })
          .strict()
          .refine((b) => (b.provider_name === undefined) !== (b.provider_id === undefined), {
            message: 'give exactly one of provider_name and provider_id',
            path: ['provider_name'],
          }),
        response: { 200: startResponse.extend({ connection_id: z.string() }), ...errorResponses(404, 413) },
      },
    },
    async (request) => {
      const b = request.body;
      return consent.start(auditContext(request), {
        workspaceId: b.user_id,
        providerRef: (b.provider_id ?? b.provider_name)!,
        scopes: b.scopes,
        returnUrl: b.return_url,
        action: b.action,
        metadata: b.metadata,
        principal: request.principal,
        connectionConfig: b.connection_config,
        verify: b.verify,
      });
    },
  );

  r.post(
    '/auth/consent-spec',
    {
      schema: {
        operationId: 'consentSpec',
        tags: ['consent'],
        summary: 'Start a consent flow for a workspace (operator form of request-connection)',
        body: z
          .object({
            workspace_id: workspace,
            provider_id: providerRef.describe('Provider id, name or alias'),
            scopes: requestedScopes,
            return_url: returnUrl,
            connection_config: connectionConfig.optional(),
          })
          .strict(),
        response: { 200: startResponse, ...errorResponses(404, 413) },
      },
    },
    async (request) => {
      const b = request.body;
      const started = await consent.start(auditContext(request), {
        workspaceId: b.workspace_id,
        providerRef: b.provider_id,
        scopes: b.scopes,
        returnUrl: b.return_url,
        connectionConfig: b.connection_config,
      });
      return {
        authUrl: started.authUrl,
        state: started.state,
        scopes: started.scopes,
        provider_id: started.provider_id,
      };
    },
  );

  r.get(
    deps.callbackPath,
    {
      config: { auth: 'public', rateLimit: 'callback' },
      schema: {
        // A browser redirect target answering 302 or an HTML page, not an API: kept out of the
        // OpenAPI document like the hosted capture page (the tests drive it through a real provider).
        hide: true,
        operationId: 'oauthCallback',
        tags: ['consent'],
        summary:
          "The provider's redirect target; answers 302 to the caller's return_url with status=success|failed",
        // The parameters a provider sends (RFC 6749 §4.1.2, RFC 9207 `iss`); others are tolerated.
        // Repeats pass validation so the failure still ends as a redirect (oauth4webapi refuses them).
        querystring: z.looseObject({
          state: callbackParam(),
          code: callbackParam(),
          iss: callbackParam(),
          error: callbackParam(),
          error_description: callbackParam(),
          error_uri: callbackParam(),
        }),
      },
    },
    async (request, reply) => {
      // The raw query, not the parsed one: oauth4webapi rejects repeated parameters itself.
      const params = new URL(request.url, 'http://callback.invalid').searchParams;
      const outcome = await consent.callback(params, auditContext(request));
      if (outcome.kind === 'redirect') return reply.redirect(outcome.location, 302);
      return reply
        .status(outcome.status)
        .header('content-security-policy', "default-src 'none'; frame-ancestors 'none'")
        .header('referrer-policy', 'no-referrer')
        .type('text/html; charset=utf-8')
        .send(page(outcome));
    },
  );
}
