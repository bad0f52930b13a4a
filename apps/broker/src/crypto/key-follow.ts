import { statSync } from 'node:fs';
import { createLiveKeyRing, type KeyRing, type LiveKeyRing, sameKeys } from './keyring.ts';

/**
 * A process's key rings, each one object for the life of the process whose keys follow the key
 * file when they come from it (decision 0013). Keys from the environment (Transit-wrapped or not)
 * never change in a running process.
 */
export interface FollowedKeys {
  readonly ring: KeyRing;
  /** Encrypts user secrets; undefined when none is configured (the user-secret API then answers 503). */
  readonly userSecretsRing: KeyRing | undefined;
  /** The key file the rings follow, or undefined when every ring's keys come from the environment. */
  readonly follows: string | undefined;
  /**
   * Re-reads the key file and swaps the rings' keys if they changed (a no-op when keys come from
   * the environment). Without `force`, the file is read only when its metadata changed. Never
   * throws: a file that cannot be read leaves the keys as they were, and listeners hear why.
   */
  reload(options?: { force?: boolean; reason?: string }): KeyReload;
  /** Hears every reload that changed the keys or failed; returns the way to stop listening. */
  onReload(listener: (event: KeyReloadEvent) => void): () => void;
}

export type KeyReload = 'unchanged' | 'changed' | 'failed';

export type KeyReloadEvent =
  | {
      readonly outcome: 'changed';
      readonly reason: string;
      readonly encryption: readonly string[];
      readonly userSecrets: readonly string[];
    }
  | { readonly outcome: 'failed'; readonly reason: string; readonly message: string };

/** The key file and which rings come from it; `read` gives those rings as the file has them now. */
export interface FollowedFile {
  readonly path: string;
  readonly encryption: boolean;
  readonly userSecrets: boolean;
  read(): { readonly ring: KeyRing; readonly userSecretsRing: KeyRing | undefined };
}

/** A reload after a lookup of an unknown key id reads the file at most this often, unless it changed. */
const FORCED_RELOAD_MS = 1_000;

/** The identity of the key file's current contents, as far as metadata tells (cheap to compare). */
function fileSignature(path: string): string | undefined {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch {
    return undefined;
  }
}

/**
 * Wraps `initial`'s rings so that they follow `file` (fixed rings when it is undefined). A ring
 * that exists keeps existing: a file that drops `user_secrets_keys` leaves that ring as it was
 * (the user-secret API cannot appear or vanish without a restart), and a ring absent at start
 * stays absent.
 */
export function followKeys(
  initial: { ring: KeyRing; userSecretsRing: KeyRing | undefined },
  file?: FollowedFile,
): FollowedKeys {
  const listeners = new Set<(event: KeyReloadEvent) => void>();
  const emit = (event: KeyReloadEvent) => {
    for (const listener of [...listeners]) listener(event);
  };
  let signature = file === undefined ? undefined : fileSignature(file.path);
  let lastForced = 0;
  let reading = false;
  // The last read failed and the file has not changed since: said once, not on every poll.
  let failing = false;

  const swap = (live: LiveKeyRing | undefined, next: KeyRing | undefined): boolean => {
    if (live === undefined || next === undefined || sameKeys(next, live.snapshot())) return false;
    live.replace(next);
    return true;
  };

  const reload = (options: { force?: boolean; reason?: string } = {}): KeyReload => {
    if (file === undefined || reading) return 'unchanged';
    const reason = options.reason ?? 'reload';
    const now = fileSignature(file.path);
    if (!options.force && now === signature) return failing ? 'failed' : 'unchanged';
    reading = true;
    signature = now;
    try {
      const next = file.read();
      failing = false;
      const changedMain = file.encryption && swap(ring, next.ring);
      const changedUser = file.userSecrets && swap(userSecretsRing, next.userSecretsRing);
      if (!changedMain && !changedUser) return 'unchanged';
      emit({ outcome: 'changed', reason, encryption: ring.kids, userSecrets: userSecretsRing?.kids ?? [] });
      return 'changed';
    } catch (error) {
      failing = true;
      emit({ outcome: 'failed', reason, message: (error as Error).message });
      return 'failed';
    } finally {
      reading = false;
    }
  };

  // A key id this process does not know: another process may have reloaded the file sooner.
  // Re-read it now if it changed; regardless at most once a second (a file edited in place within
  // the clock's resolution keeps its metadata).
  const onMiss = () => {
    const t = Date.now();
    const force = t - lastForced >= FORCED_RELOAD_MS;
    if (force) lastForced = t;
    reload({ force, reason: 'unknown key id' });
  };
  const ring = createLiveKeyRing(initial.ring, file?.encryption ? onMiss : undefined);
  const userSecretsRing =
    initial.userSecretsRing === undefined
      ? undefined
      : createLiveKeyRing(initial.userSecretsRing, file?.userSecrets ? onMiss : undefined);
  return {
    ring,
    userSecretsRing,
    follows: file?.path,
    reload,
    onReload(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
