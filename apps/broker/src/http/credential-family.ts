import { createHash } from 'node:crypto';
import { basicCredentials } from './basic-auth.ts';

/**
 * The "family" of a presented credential: what failed authentications are counted by, with the
 * client address. It is read from the credential's shape before anything is checked, and names
 * the key without holding any part of its secret:
 *
 * - `admin:<id>`: an admin key `nxa_<id>_<secret>` (the id is not a secret, and not public either);
 * - `token:<sub>`: an agent access token (a JWT; its `sub`, read without checking it);
 * - `client:<client_id>/<secret id>` or `client:<client_id>/jwt:<kid>`: an agent logging in at
 *   `/oauth/token` with a client secret `nxs_<secret id>_…` or a signed assertion;
 * - `env:<name>`: a key from API_KEY(S), recognised by its hash: only the key itself gets here;
 * - `other`: anything else (garbage, a malformed key): one family per address, so an attacker
 *   cycling random strings shares one counter and never reaches another family's;
 * - `none`: no credential at all.
 *
 * A family made up by an attacker (a random admin-key id, a forged token's `sub`) is counted too,
 * and also in the address's total of failures of families not known to be good (rate-limit.ts).
 */
export type CredentialFamily = string;

const ADMIN_KEY = /^nxa_([a-f0-9]{16})_[A-Za-z0-9_-]{43}$/;
const CLIENT_SECRET = /^nxs_([a-f0-9]{16})_[A-Za-z0-9_-]{43}$/;
const JWT = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+$/;
/** Agent ids (agents.routes.ts), as client ids and assertion issuers. */
const CLIENT_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** What a `sub` or `kid` may look like to become part of a family (bounded: it becomes a Redis key). */
const NAME = /^[A-Za-z0-9._:@-]{1,128}$/;
const MAX_CREDENTIAL = 16_384;

/**
 * A string member of a JWT part (header or payload), unverified, as it goes into a family: itself
 * when it is a plain name, else a digest of it (bounded either way); undefined when absent.
 */
function jwtMember(part: string, member: string): string | undefined {
  try {
    const value = (JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>)[
      member
    ];
    if (typeof value !== 'string' || value === '') return undefined;
    return NAME.test(value) ? value : `#${createHash('sha256').update(value).digest('hex').slice(0, 16)}`;
  } catch {
    return undefined;
  }
}

/** The family of a credential sent in `X-API-Key` or `Authorization: Bearer`. */
export function credentialFamily(
  credential: string | undefined,
  envKeyName: (credential: string) => string | undefined,
): CredentialFamily {
  if (credential === undefined) return 'none';
  if (credential.length > MAX_CREDENTIAL) return 'other';
  // In the order http/auth.ts tries them.
  const admin = ADMIN_KEY.exec(credential);
  if (admin) return `admin:${admin[1]}`;
  const jwt = credential.length > 64 ? JWT.exec(credential) : null;
  if (jwt) {
    const sub = jwtMember(jwt[2]!, 'sub');
    return sub === undefined ? 'other' : `token:${sub}`;
  }
  const env = envKeyName(credential);
  return env === undefined ? 'other' : `env:${env}`;
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Routes where the client authenticates in the body: its family is known once the body is parsed. */
export const LOGIN_ROUTES: ReadonlySet<string> = new Set(['/oauth/token']);

/**
 * The family of an agent's credential at `POST /oauth/token` (the form body, parsed): the client
 * secret or assertion it authenticates with, or for token exchange its `actor_token`.
 */
export function loginFamily(
  authorization: string | undefined,
  body: unknown,
  envKeyName: (credential: string) => string | undefined,
): CredentialFamily {
  const form = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const text = (name: string) => (typeof form[name] === 'string' ? (form[name] as string) : undefined);
  if (form.grant_type === TOKEN_EXCHANGE && text('actor_token') !== undefined)
    return credentialFamily(text('actor_token'), envKeyName);
  const assertion = text('client_assertion');
  if (assertion !== undefined) {
    const jwt = assertion.length > MAX_CREDENTIAL ? null : JWT.exec(assertion);
    const iss = jwt ? jwtMember(jwt[2]!, 'iss') : undefined;
    if (jwt === null || iss === undefined || !CLIENT_ID.test(iss)) return 'other';
    return `client:${iss}/jwt:${jwtMember(jwt[1]!, 'kid') ?? '-'}`;
  }
  const fromHeader = basicCredentials(authorization);
  const clientId = fromHeader?.clientId ?? text('client_id');
  const secret = fromHeader?.secret ?? text('client_secret');
  if (clientId === undefined && secret === undefined) return 'none';
  const secretId = secret === undefined ? null : CLIENT_SECRET.exec(secret);
  if (clientId === undefined || !CLIENT_ID.test(clientId) || secretId === null) return 'other';
  return `client:${clientId}/${secretId[1]}`;
}
