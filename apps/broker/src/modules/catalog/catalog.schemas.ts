/**
 * The catalogue's answers as the served OpenAPI document describes them. An entry's full shape is
 * catalog/schema/provider.schema.json; here its top level is named and the nested objects are
 * described, each kept as the entry has it.
 */
import * as z from 'zod';
import { AUTH_TYPES } from '../providers/providers.schemas.ts';

const authType = z.enum(AUTH_TYPES).describe("As a provider profile's auth_type");
const object = (description: string) => z.record(z.string(), z.unknown()).describe(description);

export const catalogKey = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and dashes')
  .describe('The entry key (the default provider name), e.g. `google`');

export const catalogSummary = z
  .object({
    key: z.string(),
    name: z.string(),
    description: z.string().optional(),
    categories: z.array(z.string()),
    auth_type: authType,
    version: z.number().int().describe('Raised on every change of the entry'),
    parameters: z
      .array(z.string())
      .describe('Names of the per-connection parameters (`connection_config` of request-connection)'),
  })
  .meta({ id: 'CatalogSummary' });

export const catalogEntry = z
  .looseObject({
    key: z.string(),
    version: z.number().int(),
    name: z.string(),
    description: z.string().optional(),
    categories: z.array(z.string()),
    docs: z.string().describe("The provider's API documentation"),
    source: z.string().describe('The official page the authentication facts were taken from'),
    auth_type: authType,
    parameters: object(
      'Per-connection parameters by name: {title, description, pattern, default, example}',
    ).optional(),
    learnt: object('Values learnt at consent by name: {from, url (from: api), path, pattern}').optional(),
    oauth2: object(
      'Endpoints (or issuer with discovery), token_auth_method, pkce, scope_separator, default_scopes, authorize_params, refresh, token_response',
    ).optional(),
    static: object('capture (the credential form), strategy {type, config}, help').optional(),
    api: object('base_url: where the credential proxy sends requests').optional(),
    setup: object('app_settings (what to set up at the provider), console_url').optional(),
  })
  .describe('A catalogue entry as catalog/schema/provider.schema.json describes it')
  .meta({ id: 'CatalogEntry' });
