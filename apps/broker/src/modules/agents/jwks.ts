import { createPublicKey, type KeyObject } from 'node:crypto';
import * as z from 'zod';
import { weakKeyProblem } from '../../crypto/verify-keys.ts';

/**
 * The public keys an agent registers for `private_key_jwt` (RFC 7523), checked as keys: a known
 * `kty` with its required members (RFC 7518 §6), sizes the broker accepts (RSA ≥ 2048 bits, EC
 * P-256/P-384, Ed25519), an `alg` that fits the key and that the token endpoint verifies, and no
 * member beyond those a public signing key has (strings, except `key_ops`, `x5c` and `ext`). A key
 * must import (a point off its curve does not). Private members are refused with their own message.
 * A key set may not hold values nested at will: one 1,000 levels deep once broke every export.
 */

/** Members only private or symmetric keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const PRIVATE_MESSAGE =
  'a public key only: remove the private members (d, p, q, dp, dq, qi, k); the agent keeps its private key';

/**
 * The algorithms the token and introspection endpoints accept for client assertions (client-auth.ts),
 * as the metadata document lists them; by key type below.
 */
export const CLIENT_ASSERTION_ALGORITHMS = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'] as const;
const ALGORITHMS = CLIENT_ASSERTION_ALGORITHMS;
const FITS: Record<(typeof ALGORITHMS)[number], (key: { kty: string; crv?: string }) => boolean> = {
  RS256: (key) => key.kty === 'RSA',
  PS256: (key) => key.kty === 'RSA',
  ES256: (key) => key.crv === 'P-256',
  ES384: (key) => key.crv === 'P-384',
  EdDSA: (key) => key.crv === 'Ed25519',
};
/** Coordinate length (base64url characters) of each curve: 32, 48 and 32 bytes. */
const COORDINATE: Record<string, number> = { 'P-256': 43, 'P-384': 64, Ed25519: 43 };

const base64url = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .regex(/^[A-Za-z0-9_-]+$/, 'base64url without padding');

const common = {
  kid: z.string().min(1).max(128).optional(),
  use: z.literal('sig').optional().describe('Only signing keys authenticate a client'),
  alg: z.enum(ALGORITHMS).optional(),
  key_ops: z.array(z.literal('verify')).max(1).optional(),
  ext: z.boolean().optional(),
  x5c: z
    .array(
      z
        .string()
        .max(8192)
        .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64 DER certificate'),
    )
    .min(1)
    .max(5)
    .optional(),
  x5t: base64url(27, 27).optional(),
  'x5t#S256': base64url(43, 43).optional(),
};

const rsa = z.strictObject({
  kty: z.literal('RSA'),
  // 2048 to 8192 bits.
  n: base64url(342, 1366),
  e: base64url(1, 8),
  ...common,
});
const ec = z.strictObject({
  kty: z.literal('EC'),
  crv: z.enum(['P-256', 'P-384']),
  x: base64url(43, 64),
  y: base64url(43, 64),
  ...common,
});
const okp = z.strictObject({
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  x: base64url(43, 43),
  ...common,
});

export const publicJwk = z
  .record(z.string().max(64), z.unknown())
  .refine((key) => !PRIVATE_JWK_MEMBERS.some((m) => m in key), { message: PRIVATE_MESSAGE, abort: true })
  .pipe(
    z.discriminatedUnion('kty', [rsa, ec, okp], {
      error: (issue) =>
        issue.code === 'invalid_union' ? 'kty must be RSA, EC or OKP (with its members)' : undefined,
    }),
  )
  .superRefine((key, ctx) => {
    const problem = keyProblem(key);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

/** What is wrong with a key of the right shape: sizes, its `alg`, or that it does not import. */
function keyProblem(key: z.infer<typeof rsa> | z.infer<typeof ec> | z.infer<typeof okp>): string | undefined {
  if (key.kty !== 'RSA') {
    const length = COORDINATE[key.crv]!;
    if (key.x.length !== length || (key.kty === 'EC' && key.y.length !== length))
      return `${key.crv} coordinates are ${length} base64url characters`;
  }
  if (key.alg !== undefined && !FITS[key.alg](key)) return `alg ${key.alg} does not fit this ${key.kty} key`;
  const material =
    key.kty === 'RSA'
      ? { kty: key.kty, n: key.n, e: key.e }
      : key.kty === 'EC'
        ? { kty: key.kty, crv: key.crv, x: key.x, y: key.y }
        : { kty: key.kty, crv: key.crv, x: key.x };
  let imported: KeyObject;
  try {
    imported = createPublicKey({ key: material, format: 'jwk' });
  } catch {
    return 'not a valid public key (it does not import)';
  }
  return weakKeyProblem(imported);
}

export const MAX_AGENT_KEYS = 10;

export const agentJwks = z
  .object({ keys: z.array(publicJwk).min(1).max(MAX_AGENT_KEYS) })
  .strict()
  .describe('Public keys for private_key_jwt client authentication');

export type AgentJwks = z.infer<typeof agentJwks>;

/** Members a stored key may show: public, and flat (a string, or a list of strings, or `ext`). */
const shown = (member: string, value: unknown) =>
  !PRIVATE_JWK_MEMBERS.includes(member) &&
  (typeof value === 'string' ||
    (member === 'ext' && typeof value === 'boolean') ||
    (Array.isArray(value) && value.length <= 10 && value.every((v) => typeof v === 'string')));

/**
 * The registered keys as an answer shows them: public members only, and nothing nested. Keys
 * stored before registration checked them may hold private members or values nested thousands of
 * levels deep, which would break every reader that walks them (an export, a YAML writer).
 */
export function shownJwks(stored: string): { keys: Record<string, unknown>[] } {
  const parsed = JSON.parse(stored) as { keys?: unknown };
  const keys = Array.isArray(parsed.keys) ? parsed.keys.slice(0, MAX_AGENT_KEYS) : [];
  return {
    keys: keys
      .filter(
        (key): key is Record<string, unknown> =>
          typeof key === 'object' && key !== null && !Array.isArray(key),
      )
      .map((key) => Object.fromEntries(Object.entries(key).filter(([m, v]) => shown(m, v)))),
  };
}
