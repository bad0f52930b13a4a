import { secretError } from './secrets.errors.ts';

/** A stored secret: its bytes and the backend's identifier of this version. */
export interface SecretValue {
  readonly value: Uint8Array;
  /**
   * Opaque version id, different after every write: a counter for `internal` and Vault KV v2,
   * the `VersionId` (a UUID) for AWS, the version number for GCP. Compare with `===`, never order.
   */
  readonly version: string;
}

/**
 * Where long-lived secrets live (provider client secrets now; connection tokens and user secrets
 * later). Values are bytes. Paths are `/`-separated, at most 512 characters. The internal backend
 * keeps envelope-encrypted rows in the broker database; external backends (Vault/OpenBao, AWS,
 * GCP) implement the same interface and pass the same conformance suite
 * (`apps/broker/test/secret-backends/conformance.ts`).
 *
 * Failures are `NexusError`s from `secrets.errors.ts`; the backend's own text is in `detail` only.
 */
export interface SecretBackend {
  readonly kind: string;
  /** Whether superseded versions stay readable through `get(path, { version })`. */
  readonly keepsVersions: boolean;
  /** The current version, or the given one when the backend keeps versions; null when absent. */
  get(path: string, options?: { version?: string }): Promise<SecretValue | null>;
  /**
   * Writes a new version (creating the secret if needed) and returns its id. `fresh`: the caller
   * made the path up and expects nothing there, so a backend whose create and update are separate
   * calls (AWS, GCP) tries the create first; an existing secret is still written.
   */
  put(path: string, value: Uint8Array, options?: { fresh?: boolean }): Promise<{ version: string }>;
  /** Removes the secret and all its versions. Idempotent: deleting a missing path succeeds. */
  delete(path: string): Promise<void>;
  /**
   * Paths that start with `prefix`, sorted by code point (UTF-8 byte order), at most `limit` (default 100, max 1000),
   * starting after `after` (the last path of the previous page).
   */
  list(prefix: string, options?: { after?: string; limit?: number }): Promise<string[]>;
  /** Throws a `secret_backend_*` error when the backend is unreachable or refuses us. */
  healthCheck(): Promise<void>;
  close(): Promise<void>;
}

export const MAX_SECRET_PATH = 512;
export const MAX_SECRET_BYTES = 64 * 1024;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

const hasControlCharacter = (text: string) => [...text].some((c) => c.charCodeAt(0) < 0x20);
/** A `.` or `..` segment: a file- or URL-based backend would resolve it to another path. */
const hasDotSegment = (text: string) => text.split('/').some((s) => s === '.' || s === '..');

/** Refuses empty, absolute, `//`-containing, dot-segment, over-long or control-character paths. */
export function checkPath(path: string): void {
  if (
    path.length === 0 ||
    path.length > MAX_SECRET_PATH ||
    path.startsWith('/') ||
    path.endsWith('/') ||
    path.includes('//') ||
    hasDotSegment(path) ||
    hasControlCharacter(path)
  ) {
    throw secretError('secret_path_invalid');
  }
}

/**
 * Refuses empty values and values over `MAX_SECRET_BYTES`: the limits every supported backend
 * shares (AWS stores 1 byte to 64 KiB; an empty payload is "neither SecretString nor SecretBinary").
 */
export function checkValue(value: Uint8Array): void {
  if (value.byteLength === 0) throw secretError('secret_value_empty');
  if (value.byteLength > MAX_SECRET_BYTES) throw secretError('secret_too_large');
}

/** The page size a `list` call asked for, clamped. */
export function listLimit(limit: number | undefined): number {
  return Math.max(1, Math.min(limit ?? DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT));
}

/** Code-point order (UTF-8 byte order), the order of `list`; JS `<` compares UTF-16 code units. */
export function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Pages an in-memory list the way `SecretBackend.list` promises (for backends that list whole). */
export function pageOf(paths: string[], options: { after?: string; limit?: number } = {}): string[] {
  const sorted = [...new Set(paths)].sort(byCodePoint);
  const after = options.after;
  const start = after === undefined ? sorted : sorted.filter((p) => byCodePoint(p, after) > 0);
  return start.slice(0, listLimit(options.limit));
}

/** A list prefix may be empty or end with `/`, but is otherwise held to the path rules. */
export function checkPrefix(prefix: string): void {
  if (
    prefix.length > MAX_SECRET_PATH ||
    prefix.startsWith('/') ||
    hasDotSegment(prefix) ||
    hasControlCharacter(prefix)
  )
    throw secretError('secret_path_invalid');
}
