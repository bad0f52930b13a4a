import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { ResolvedKeys } from './key-file.ts';

/**
 * How often the key file's metadata is compared when no file-system event came: network file
 * systems send none, and a Kubernetes Secret volume swaps a `..data` symlink, not the file.
 */
const POLL_MS = 2_000;
/** Events come in bursts (temp file written, renamed): one reload after the burst. */
const SETTLE_MS = 50;

/**
 * Makes a long-running process follow its key file: a reload on every change the file system
 * reports in the file's directory, and a metadata check every `pollMs` in case none is reported.
 * A no-op when the keys come from the environment. Timers never keep the process alive.
 */
export function watchKeyFile(keys: ResolvedKeys, options: { pollMs?: number } = {}): { close(): void } {
  const path = keys.follows;
  if (path === undefined) return { close() {} };
  let settle: NodeJS.Timeout | undefined;
  const soon = () => {
    if (settle !== undefined) return;
    settle = setTimeout(() => {
      settle = undefined;
      keys.reload({ reason: 'key file changed' });
    }, SETTLE_MS);
    settle.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      if (name === null || name === basename(path)) soon();
    });
    // Some file systems refuse watching, or stop later: polling carries on alone.
    watcher.on('error', () => {
      watcher?.close();
      watcher = undefined;
    });
  } catch {
    watcher = undefined;
  }
  const poll = setInterval(() => keys.reload({ reason: 'key file changed' }), options.pollMs ?? POLL_MS);
  poll.unref();
  return {
    close() {
      clearInterval(poll);
      clearTimeout(settle);
      watcher?.close();
    },
  };
}
