import type { ResolvedKeys } from '../../crypto/key-file.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import type { Database } from '../../db/client.ts';
import { type BrokerProcess, LIVE_MS, type LiveBrokers } from '../brokers/brokers.types.ts';
import { describeProcess, missingKeys } from '../brokers/rings.ts';
import type { CredentialKeyIds } from '../connections/maintenance.ts';
import type { UserSecretKeyIds } from '../user-secrets/maintenance.ts';
import { columnKeyUsage, ENCRYPTED_COLUMNS } from './rewrap.ts';

/** A `nexus doctor` finding about keys (the doctor's own format). */
export interface KeyFinding {
  readonly level: 'ok' | 'warn' | 'fail';
  readonly check: string;
  readonly message: string;
  readonly fix?: string;
}

/** Key id → where its ciphertexts are → how many. */
type Usage = Map<string, Map<string, number>>;

function add(usage: Usage, kid: string, where: string, n = 1) {
  const byPlace = usage.get(kid) ?? new Map<string, number>();
  byPlace.set(where, (byPlace.get(where) ?? 0) + n);
  usage.set(kid, byPlace);
}

const total = (byPlace: Map<string, number>) => [...byPlace.values()].reduce((a, b) => a + b, 0);
const places = (byPlace: Map<string, number>) => [...byPlace].map(([where, n]) => `${where} ${n}`).join(', ');

/** The key ids of every ciphertext sealed with the encryption ring, by table. */
async function encryptionUsage(db: Database, credentials: CredentialKeyIds | undefined): Promise<Usage> {
  const usage: Usage = new Map();
  for (const col of ENCRYPTED_COLUMNS) {
    const backendCopy =
      credentials === undefined
        ? undefined
        : (id: string, marker: Uint8Array) => credentials.keyIdOf(id, marker).catch(() => 'unreadable');
    for (const [kid, n] of await columnKeyUsage(db, col, backendCopy)) add(usage, kid, col.table, n);
  }
  return usage;
}

/** The key ids of every user-secret version (the inner envelope, sealed with the user-secrets ring). */
async function userSecretsUsage(userSecrets: UserSecretKeyIds): Promise<Usage> {
  const usage: Usage = new Map();
  for await (const kid of userSecrets.ofVersions()) add(usage, kid ?? 'unreadable', 'user secrets');
  return usage;
}

/**
 * What `nexus doctor` says about key rotation: the live broker processes and their rings, a
 * process lacking a key another writes with, and for each ring the ciphertexts not under its
 * primary (rewrap needed), under no key of the ring (lost unless the key is put back), and the
 * older keys nothing uses any more (safe to remove).
 */
export async function keyRotationFindings(deps: {
  db: Database;
  keys: Pick<ResolvedKeys, 'ring' | 'userSecretsRing'>;
  brokers: LiveBrokers;
  /** Connection credentials kept in the secret backend (TOKEN_STORE=secret-backend). */
  credentials?: CredentialKeyIds;
  /**
   * Set when values sealed with the encryption ring are kept in a secret backend that did not
   * answer: their keys are unknown, so no older key is called removable.
   */
  backendUnread?: boolean;
  /** Key ids of the stored user-secret versions (read through the secret backend). */
  userSecrets?: UserSecretKeyIds;
  now: number;
}): Promise<KeyFinding[]> {
  const findings: KeyFinding[] = [];
  const live = await deps.brokers.live(deps.now);
  findings.push(...brokerFindings(live, deps.keys, deps.now));
  const usage = await encryptionUsage(deps.db, deps.credentials);
  findings.push(...ringFindings('encryption', deps.keys.ring, usage, live, deps.backendUnread === true));
  if (deps.keys.userSecretsRing !== undefined && deps.userSecrets !== undefined) {
    const users = await userSecretsUsage(deps.userSecrets);
    findings.push(...ringFindings('user secrets', deps.keys.userSecretsRing, users, live));
  }
  return findings;
}

const fixFor = (p: BrokerProcess, variable: string) =>
  p.keySource === 'file'
    ? `let it re-read its key file (\`kill -HUP ${p.pid}\` on ${p.host}); a host with its own copy of the file needs the new one copied there`
    : `add the key to ${variable} on that replica and restart it`;

function brokerFindings(
  live: readonly BrokerProcess[],
  keys: Pick<ResolvedKeys, 'ring' | 'userSecretsRing'>,
  now: number,
): KeyFinding[] {
  if (live.length === 0)
    return [
      {
        level: 'ok',
        check: 'brokers',
        message: `no broker process is running (none sent a heartbeat in the last ${LIVE_MS / 1000} s)`,
      },
    ];
  const out: KeyFinding[] = [];
  for (const p of live) {
    const ring = (kids: readonly string[]) =>
      kids.length === 0 ? 'none' : kids.map((k, i) => (i === 0 ? `${k} (primary)` : k)).join(', ');
    out.push({
      level: 'ok',
      check: 'brokers',
      message: `${describeProcess(p)}, keys from ${p.keySource}, heartbeat ${Math.max(0, Math.round((now - p.heartbeatAt) / 1000))} s ago; encryption keys ${ring(p.rings.encryption)}; user-secrets keys ${ring(p.rings.userSecrets)}`,
    });
  }
  for (const p of live) {
    for (const m of missingKeys(p.rings, live)) {
      const variable = m.ring === 'encryption' ? 'ENCRYPTION_KEYS' : 'USER_SECRETS_KEYS';
      out.push({
        level: 'fail',
        check: 'brokers',
        message: `${describeProcess(p)} lacks ${m.ring === 'encryption' ? 'encryption' : 'user-secrets'} key ${m.kid}, which ${describeProcess(m.writer)} writes with: it fails on what that one seals, and its /ready answers 503 (key_ring: behind)`,
        fix: fixFor(p, variable),
      });
    }
  }
  for (const p of live) {
    const mismatch = (theirs: string | undefined, mine: string | undefined, what: string) => {
      if (theirs === undefined || mine === undefined || theirs === mine) return;
      out.push({
        level: 'warn',
        check: 'brokers',
        message: `${describeProcess(p)} writes ${what} with key ${theirs}; the keys this doctor was given have primary ${mine}`,
        fix: 'finish the roll-out of the new key (docs/operations.md, "Rotating the encryption key"), or run doctor with the brokers\' keys',
      });
    };
    mismatch(p.rings.encryption[0], keys.ring.primaryKid, 'stored secrets');
    mismatch(p.rings.userSecrets[0], keys.userSecretsRing?.primaryKid, 'user secrets');
  }
  return out;
}

function ringFindings(
  name: 'encryption' | 'user secrets',
  ring: KeyRing,
  usage: Usage,
  live: readonly BrokerProcess[],
  backendUnread = false,
): KeyFinding[] {
  const out: KeyFinding[] = [];
  const enc = name === 'encryption';
  const variable = enc ? 'ENCRYPTION_KEYS' : 'USER_SECRETS_KEYS';
  const what = enc ? 'stored secret(s)' : 'stored user secret(s)';
  const ringOf = (p: BrokerProcess) => (enc ? p.rings.encryption : p.rings.userSecrets);
  for (const [kid, byPlace] of usage) {
    const n = total(byPlace);
    if (kid === 'unreadable') {
      out.push({
        level: 'fail',
        check: 'ciphertexts',
        message: `${n} ${what} could not be read or are not envelopes (${places(byPlace)})`,
        fix: 'restore them from a backup; `nexus keys rewrap` lists each one',
      });
      continue;
    }
    for (const p of live)
      if (ringOf(p).length > 0 && !ringOf(p).includes(kid))
        out.push({
          level: 'fail',
          check: 'ciphertexts',
          message: `${describeProcess(p)} lacks ${enc ? 'encryption' : 'user-secrets'} key ${kid}, used by ${n} ${what} (${places(byPlace)}): it fails on each of them`,
          fix: fixFor(p, variable),
        });
    if (kid === ring.primaryKid) continue;
    if (ring.key(kid) === undefined)
      out.push({
        level: 'fail',
        check: 'ciphertexts',
        message: `${n} ${what} use key ${kid}, which is not in the ${enc ? '' : 'user-secrets '}key ring`,
        fix: `add that key back to ${variable} (or the key file)`,
      });
    else
      out.push({
        level: 'warn',
        check: 'ciphertexts',
        message: `${n} ${what} still use older key ${kid}`,
        fix: 'run `nexus keys rewrap`',
      });
  }
  const written = new Set(live.map((p) => ringOf(p)[0]).filter((k) => k !== undefined));
  for (const kid of ring.kids) {
    if (kid === ring.primaryKid || usage.has(kid)) continue;
    if (written.has(kid))
      out.push({
        level: 'warn',
        check: 'keys',
        message: `older ${name} key ${kid} seals nothing stored, but a running broker still writes with it: keep it`,
        fix: 'move the new key first on every replica and restart them (docs/operations.md)',
      });
    else if (backendUnread)
      out.push({
        level: 'warn',
        check: 'keys',
        message: `older ${name} key ${kid} is used by nothing in the database, but the tokens kept in the secret backend (TOKEN_STORE=secret-backend) could not be read: keep it`,
        fix: 'run `nexus doctor` again once the secret backend answers, before removing it',
      });
    else
      out.push({
        level: 'ok',
        check: 'keys',
        message: `older ${name} key ${kid} is used by no stored value and no running broker writes with it: it can be removed from ${ring.origin ?? variable}`,
      });
  }
  return out;
}
