import * as z from 'zod';

export const AUTH_TYPES = [
  'oauth2',
  'api_key',
  'basic_auth',
  'header',
  'query_param',
  'hmac_payload',
  'aws_sigv4',
] as const;
export type AuthType = (typeof AUTH_TYPES)[number];
export const CLIENT_AUTH_METHODS = ['client_secret_post', 'client_secret_basic', 'private_key_jwt'] as const;

export const providerName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9-]+$/, 'lower-case letters, digits and dashes only')
  .describe('Unique among live providers and aliases; `^[a-z0-9-]+$`');

/** Accepts "" and null as "not set", as the original's Go clients send zero values. */
const optionalText = (max: number) => z.string().max(max).nullish();
const optionalUrl = z
  .union([z.literal(''), z.url({ protocol: /^https?$/ }).max(2048)])
  .nullish()
  .describe('Absolute https URL (http only for localhost in development)');

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const scope = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes');

const fields = {
  name: providerName,
  auth_type: z.enum(AUTH_TYPES).describe('How agents authenticate upstream'),
  auth_header: z.enum(CLIENT_AUTH_METHODS).describe('How the broker authenticates to the token endpoint'),
  client_id: optionalText(512),
  client_secret: optionalText(16384).describe(
    'Write-only: stored encrypted, never returned. With `auth_header: private_key_jwt`, the private key (PEM or private JWK) the broker signs client assertions with',
  ),
  auth_url: optionalUrl,
  token_url: optionalUrl,
  issuer: optionalUrl,
  enable_discovery: z.boolean().describe('Read endpoints from `{issuer}/.well-known/openid-configuration`'),
  scopes: z.array(scope).max(100).describe('Default scopes when a consent request names none'),
  params: z
    .record(z.string().min(1).max(64), z.unknown())
    .describe(
      'Options with meaning (`skip_scope_on_auth`, `skip_scope_on_exchange`, `credential_schema`, `auth_strategy`, `token_request_format`, `revocation_endpoint`, `validation`); other string values are extra authorize-URL parameters',
    ),
  api_base_url: optionalUrl,
  user_info_endpoint: optionalUrl,
  description: optionalText(1000),
  category: optionalText(64),
};

/** The profile as POST and PUT accept it. */
export const profileInput = z
  .object({
    ...fields,
    auth_type: fields.auth_type.default('oauth2'),
    auth_header: fields.auth_header.default('client_secret_post'),
    enable_discovery: fields.enable_discovery.default(false),
    scopes: fields.scopes.default([]),
    params: fields.params.default({}),
  })
  .strict()
  .meta({ id: 'ProviderProfileInput' });

/** PATCH: any subset; `null` clears an optional field. */
export const profilePatch = z
  .object({
    ...Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.optional()])),
  } as { [K in keyof typeof fields]: z.ZodOptional<(typeof fields)[K]> })
  .strict()
  .meta({ id: 'ProviderProfilePatch' });

export type ProfileInput = z.output<typeof profileInput>;
export type ProfilePatch = z.output<typeof profilePatch>;

/** The stored profile: input fields without the secret, "" and null normalised away. */
export interface StoredProfile {
  name: string;
  auth_type: AuthType;
  auth_header: (typeof CLIENT_AUTH_METHODS)[number];
  client_id?: string;
  auth_url?: string;
  token_url?: string;
  issuer?: string;
  enable_discovery: boolean;
  scopes: string[];
  params: Record<string, unknown>;
  api_base_url?: string;
  user_info_endpoint?: string;
  description?: string;
  category?: string;
}

export const providerView = z
  .object({
    id: z.string(),
    name: z.string(),
    auth_type: z.enum(AUTH_TYPES),
    auth_header: z.enum(CLIENT_AUTH_METHODS),
    client_id: z.string().optional(),
    has_client_secret: z
      .boolean()
      .describe('Whether a client secret is stored (its value is never returned)'),
    auth_url: z.string().optional(),
    token_url: z.string().optional(),
    issuer: z.string().optional(),
    enable_discovery: z.boolean(),
    scopes: z.array(z.string()),
    params: z.record(z.string(), z.unknown()),
    api_base_url: z.string().optional(),
    user_info_endpoint: z.string().optional(),
    description: z.string().optional(),
    category: z.string().optional(),
    aliases: z.array(z.string()),
    version: z.number().int().describe('Increases on every change; send it back in If-Match'),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Provider' });

export type ProviderView = z.output<typeof providerView>;
