import { configOrExit, containerOrExit, requireMigrated } from '../context.ts';
import { type Io, progressBar } from '../output.ts';

/** `nexus audit verify`: walks the hash chain; exit 1 and the first broken event when tampered. */
export async function auditVerify(io: Io, env: NodeJS.ProcessEnv, json: boolean): Promise<number> {
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
