/**
 * Where long-lived secrets live (provider client secrets now; connection tokens and user secrets
 * later). Values are bytes. Paths are `/`-separated, at most 512 characters. The internal backend
 * keeps envelope-encrypted rows in the broker database; external backends (Vault/OpenBao, AWS,
 * GCP) implement the same interface and pass the same conformance suite.
 */
export interface SecretBackend {
  readonly kind: string;
  get(path: string): Promise<{ value: Uint8Array; version: number } | null>;
  /** Writes a new version and returns its number. */
  put(path: string, value: Uint8Array): Promise<{ version: number }>;
  /** Idempotent: deleting a missing path succeeds. */
  delete(path: string): Promise<void>;
  /** Paths under `prefix`, sorted, paged by the last path of the previous page. */
  list(prefix: string, options?: { after?: string; limit?: number }): Promise<string[]>;
  /** Throws when the backend is unreachable or refuses us; used by `/ready` and `doctor`. */
  healthCheck(): Promise<void>;
  close(): Promise<void>;
}

export const MAX_SECRET_PATH = 512;
export const MAX_SECRET_BYTES = 64 * 1024;

const hasControlCharacter = (text: string) => [...text].some((c) => c.charCodeAt(0) < 0x20);

export function checkPath(path: string): void {
  if (
    path.length === 0 ||
    path.length > MAX_SECRET_PATH ||
    path.startsWith('/') ||
    path.includes('//') ||
    hasControlCharacter(path)
  ) {
    throw new Error('invalid secret path');
  }
}
