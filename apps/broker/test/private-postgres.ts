/**
 * A throw-away PostgreSQL cluster of a test's own (`scripts/services.sh private-postgres`), for
 * tests that stop or freeze their database: the shared test server must stay up for the others.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './cli-helpers.ts';

const run = promisify(execFile);

export interface PrivatePostgres {
  /** Creates the cluster in its directory, starts it on `port`, returns its DATABASE_URL. */
  init(port: number): Promise<string>;
  start(): Promise<void>;
  /** `pg_ctl stop -m fast`: every session is terminated, then nothing listens. */
  stop(): Promise<void>;
  /** SIGSTOP to the postmaster and every backend: connections stay open, nothing answers. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Stops it whatever its state (frozen included) and removes its directory. */
  destroy(): Promise<void>;
}

/** The cluster living in `dir` (created by `init`; must not exist yet). */
export function privatePostgres(dir: string): PrivatePostgres {
  const script = join(REPO_ROOT, 'scripts/services.sh');
  const ctl = async (action: string, ...args: string[]) =>
    (
      await run('bash', [script, 'private-postgres', action, dir, ...args], { timeout: 60_000 })
    ).stdout.trim();
  return {
    init: (port) => ctl('init', String(port)),
    start: async () => void (await ctl('start')),
    stop: async () => void (await ctl('stop')),
    freeze: async () => void (await ctl('freeze')),
    thaw: async () => void (await ctl('thaw')),
    destroy: async () => void (await ctl('destroy')),
  };
}
