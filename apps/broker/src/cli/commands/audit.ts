import { CliExit, configOrExit, containerOrExit, requireMigrated } from '../context.ts';
import { type Io, progressBar } from '../output.ts';

/** Exit status of `audit verify` when it could not check the chain (the database away, say). */
export const UNVERIFIED = 3;

/**
 * `nexus audit verify`: walks the hash chain; exit 1 and the first broken event when tampered,
 * 3 when it could not check (so that a cron job tells an outage from tampering; `--json` then
 * prints `{"ok": null, "error": …}`).
 */
export async function auditVerify(io: Io, env: NodeJS.ProcessEnv, json: boolean): Promise<number> {
  try {
    return await walk(io, env, json);
  } catch (error) {
    if (error instanceof CliExit) throw error; // configuration and migrations say so themselves
    const message = error instanceof Error ? error.message : String(error);
    if (json) io.out(JSON.stringify({ ok: null, error: message.slice(0, 500) }));
    io.err(`nexus audit verify: the chain could not be checked: ${message}`);
    return UNVERIFIED;
  }
}

async function walk(io: Io, env: NodeJS.ProcessEnv, json: boolean): Promise<number> {
  const container = await containerOrExit(configOrExit(env));
  try {
    await requireMigrated(container);
    const bar = progressBar(io, 'verify');
    const result = await container.audit.verify((checked, total) => bar.update(checked, total));
    bar.done();
    if (json) io.out(JSON.stringify(result));
    else if (result.ok)
      io.out(
        `Audit chain intact: ${result.checked} events verified${result.prunedThrough > 0 ? ` (events 1–${result.prunedThrough} were removed by retention; see NEXUS_AUDIT_EXPORT_DIR)` : ''}.`,
      );
    else io.out(`Audit chain BROKEN at event ${result.brokenAt}: ${result.reason}`);
    return result.ok ? 0 : 1;
  } finally {
    await container.close();
  }
}
