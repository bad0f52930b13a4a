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

/**
 * A profile with `auth_type: ""` and `auth_header: ""` taken as not given (their defaults then
 * apply): the original's Go clients send a string field's zero value. Changes the object given.
 */
export function withoutZeroEnums(profile: unknown): unknown {
  if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) return profile;
  const fields = profile as Record<string, unknown>;
  for (const name of ['auth_type', 'auth_header']) if (fields[name] === '') delete fields[name];
  return profile;
}

/** Accepts "" and null as "not set", as the original's Go clients send zero values. */
const optionalText = (max: number) => z.string().max(max).nullish();
/**
 * A URL with `{name}` placeholders (decision 0015): an http(s) URL, or one that starts with a
 * placeholder (a learnt origin such as `{instance_url}`). The placeholders are checked against
 * `params.connection_parameters` and `params.learnt`, and the URL once they are filled
 * (connection-params.validate.ts).
 */
const urlTemplate = z
  .string()
  .max(2048)
  .regex(/^(?=https?:\/\/|\{)[^\s#]*\{[A-Za-z_][A-Za-z0-9_]{0,63}\}[^\s#]*$/);
const optionalUrl = z
  .union([z.literal(''), z.url({ protocol: /^https?$/ }).max(2048), urlTemplate])
  .nullish()
  .describe(
    'Absolute https URL (http only for localhost in development); `auth_url`, `token_url` and `api_base_url` may name `{parameter}` placeholders (`params.connection_parameters`, `params.learnt`)',
  );

/**
 * `user_info_endpoint`: an absolute URL, or (as the original documents it: `/oauth2/v3/userinfo`,
 * `/users/me`) a path under `api_base_url`. Kept as written; resolved where it is called.
 */
const urlOrPath = z
  .union(
    [
      z.literal(''),
      z.url({ protocol: /^https?$/ }).max(2048),
      urlTemplate,
      z
        .string()
        .max(2048)
        .regex(/^\/(?!\/)[^\s#]*$/),
    ],
    { error: 'must be an absolute http(s) URL, or a path under api_base_url starting with one "/"' },
  )
  .nullish()
  .describe('Absolute https URL, or a path (`/me`) under `api_base_url`');

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
  // Null as absent: the original Go SDK sends a nil slice or map as `null` (issue #17).
  scopes: z
    .array(scope)
    .max(100)
    .nullish()
    .describe('Default scopes when a consent request names none; null or absent: none'),
  params: z
    .record(z.string().min(1).max(64), z.unknown())
    .nullish()
    .describe(
      'Options with meaning (`skip_scope_on_auth`, `skip_scope_on_exchange`, `credential_schema`, `auth_strategy` (`{type, config}`; a `headers` config maps header names to value templates in which `{field}` is a captured credential field), `token_request_format`, `revocation_endpoint`, `validation`, `jwks_uri`: the key set that verifies id_tokens of `issuer` without discovery). A static-credential provider may write its strategy settings flat (`param_name`, `header_name`, `service`…, as the original did): they are stored in `auth_strategy.config`. Other string values are extra authorize-URL parameters of an oauth2 provider',
    ),
  api_base_url: optionalUrl,
  user_info_endpoint: urlOrPath,
  description: optionalText(1000),
  category: optionalText(64),
};

/** `use_discovery`, the name trusted issuers used for `enable_discovery`, is accepted here too. */
const useDiscovery = z
  .boolean()
  .optional()
  .describe('Former name of enable_discovery (trusted issuers), still accepted; not with a different value')
  .meta({ deprecated: true });

function foldUseDiscovery<
  T extends { enable_discovery?: boolean | undefined; use_discovery?: boolean | undefined },
>(profile: T, ctx: z.RefinementCtx): Omit<T, 'use_discovery'> {
  const { use_discovery, ...rest } = profile;
  if (
    use_discovery !== undefined &&
    rest.enable_discovery !== undefined &&
    use_discovery !== rest.enable_discovery
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['use_discovery'],
      message: 'send enable_discovery or use_discovery, not both',
    });
    return z.NEVER;
  }
  return use_discovery === undefined
    ? rest
    : { ...rest, enable_discovery: rest.enable_discovery ?? use_discovery };
}

/** The profile as POST and PUT accept it. */
export const profileInput = z
  .object({
    ...fields,
    auth_type: fields.auth_type.default('oauth2'),
    auth_header: fields.auth_header.default('client_secret_post'),
    enable_discovery: fields.enable_discovery.optional(),
    use_discovery: useDiscovery,
    scopes: fields.scopes.transform((v) => v ?? []),
    params: fields.params.transform((v) => v ?? {}),
    template: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .describe(
        "A provider catalogue key (`GET /catalog`): the profile is the entry's expansion, with the fields given here winning (`params` merged key by key) and `params.template` recording `{key, version}`; an unknown key is refused with `unknown_template`",
      ),
  })
  .strict()
  // The documented shape is the object itself; the alias is folded after validation.
  .meta({ id: 'ProviderProfileInput' })
  .transform((profile, ctx) => {
    const out = foldUseDiscovery(profile, ctx);
    return { ...out, enable_discovery: out.enable_discovery ?? false };
  });

/** PATCH: any subset; `null` clears an optional field. */
export const profilePatch = z
  .object({
    ...(Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.optional()])) as {
      [K in keyof typeof fields]: z.ZodOptional<(typeof fields)[K]>;
    }),
    use_discovery: useDiscovery,
  })
  .strict()
  .meta({ id: 'ProviderProfilePatch' })
  .transform(foldUseDiscovery);

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
