import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../../config/load.ts';
import { buildContainer, type Container } from '../../container.ts';
import { migrate } from '../../db/migrate.ts';
import { createRefreshSchedule } from '../../modules/connections/refresh-schedule.ts';
import type { Counts, ImportReport } from '../../modules/import/import.types.ts';
import { importOriginal, WrongKeyError } from '../../modules/import/import-original.ts';
import { ImportInputError, parseOriginalKey } from '../../modules/import/original-crypto.ts';
import { openOriginalSource, SourceError } from '../../modules/import/original-source.ts';
import { CliExit, configOrExit, containerOrExit, requireMigrated, requireSecretBackend } from '../context.ts';
import { cliActor, type Io, progressBar } from '../output.ts';

export interface ImportOptions {
  readonly source: string | undefined;
  readonly databaseUrl: string | undefined;
  readonly encryptionKey: string | undefined;
  readonly encryptionKeyFile: string | undefined;
  readonly apply: boolean;
  readonly dryRun: boolean;
  readonly withAudit: boolean;
  readonly json: boolean;
}

/** The source database and key, from the flags or ORIGINAL_DATABASE_URL / ORIGINAL_ENCRYPTION_KEY. */
function inputs(env: NodeJS.ProcessEnv, o: ImportOptions): { url: string; key: Uint8Array } {
  const url = o.databaseUrl ?? env.ORIGINAL_DATABASE_URL;
  if (url === undefined || url === '')
    throw new CliExit(
      "import original: --database-url postgres://… (the original's database) is required",
      2,
    );
  if (!/^postgres(ql)?:\/\/[^\s]+$/.test(url))
    throw new CliExit(
      'import original: --database-url must be a PostgreSQL URL (postgres://user:password@host:5432/db)',
      2,
    );
  if (o.encryptionKey !== undefined && o.encryptionKeyFile !== undefined)
    throw new CliExit('import original: give --encryption-key or --encryption-key-file, not both', 2);
  let text = o.encryptionKey ?? env.ORIGINAL_ENCRYPTION_KEY;
  if (o.encryptionKeyFile !== undefined) {
    try {
      text = readFileSync(o.encryptionKeyFile, 'utf8');
    } catch (error) {
      throw new CliExit(
        `import original: cannot read --encryption-key-file: ${(error as { code?: string }).code ?? 'error'}`,
        2,
      );
    }
  }
  if (text === undefined || text === '')
    throw new CliExit("import original: --encryption-key (the original's ENCRYPTION_KEY) is required", 2);
  try {
    return { url, key: parseOriginalKey(text) };
  } catch (error) {
    if (error instanceof ImportInputError) throw new CliExit(`import original: ${error.message}`, 2);
    throw error;
  }
}

/**
 * A throw-away provider registry (SQLite in a temporary directory, internal secret backend, the
 * same key ring) for the dry run: each profile is created there by the same service as the real
 * one, so the dry run reports what the real create would refuse, and Nexus itself is not touched.
 */
async function rehearsalRegistry(config: Config, container: Container) {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-import-'));
  const scratch = buildContainer(
    {
      ...config,
      database: { kind: 'sqlite', file: join(dir, 'rehearsal.db') },
      secretBackend: { kind: 'internal' },
      secretBackendFallback: undefined,
      tokenStore: 'database',
      redisUrl: undefined,
    },
    { keys: container.keys },
  );
  await migrate(scratch.db);
  return {
    providers: scratch.providers,
    async close() {
      await scratch.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `nexus import original --database-url URL --encryption-key KEY [--apply] [--with-audit]`: the
 * original's providers, aliases, connections (and audit history) into Nexus. A dry run unless
 * `--apply`. Resumable and re-runnable (module README: modules/import/README.md).
 */
export async function importCommand(io: Io, env: NodeJS.ProcessEnv, options: ImportOptions): Promise<number> {
  if (options.source !== 'original')
    throw new CliExit(
      'import: the only source is `original` (nexus import original --database-url … --encryption-key …)',
      2,
    );
  if (options.apply && options.dryRun)
    throw new CliExit('import original: --apply and --dry-run contradict each other', 2);
  const { url, key } = inputs(env, options);
  const config = configOrExit(env);
  const container = await containerOrExit(config);
  const controller = new AbortController();
  const onSignal = () => {
    io.err('\nstopping after the current row; run the same command again to resume');
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let source: Awaited<ReturnType<typeof openOriginalSource>> | undefined;
  let rehearsal: Awaited<ReturnType<typeof rehearsalRegistry>> | undefined;
  try {
    await requireMigrated(container);
    if (options.apply) await requireSecretBackend(container);
    source = await openOriginalSource(url);
    if (!options.apply) rehearsal = await rehearsalRegistry(config, container);
    const bar = progressBar(io, options.apply ? 'import' : 'import (dry run)');
    const report = await importOriginal({
      source,
      key,
      apply: options.apply,
      nexus: {
        providers: container.providers,
        connections: container.connectionsMaintenance.importer({
          schedule: createRefreshSchedule(config.refresh),
          audit: container.audit,
          owner: `import-${process.pid}-${randomUUID()}`,
        }),
        audit: container.audit,
      },
      rehearsal: rehearsal?.providers ?? null,
      ctx: { actor: cliActor() },
      withAudit: options.withAudit,
      auditBatch: config.auditBatchMax,
      signal: controller.signal,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.done();
    if (options.json) io.out(JSON.stringify(report));
    else printReport(io, report);
    if (report.interrupted) return 130;
    return report.rows.some((row) => row.outcome === 'failed') ? 1 : 0;
  } catch (error) {
    if (error instanceof SourceError || error instanceof WrongKeyError)
      throw new CliExit(`import original: ${error.message}`, 1);
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await source?.close();
    await rehearsal?.close();
    await container.close();
  }
}

const WORDS: Record<string, string> = {
  created: 'created',
  imported: 'imported',
  updated: 'updated',
  unchanged: 'already there',
  would_create: 'would be created',
  would_import: 'would be imported',
  would_update: 'would be updated',
  skipped: 'skipped',
  failed: 'failed',
};

/** Counts in a fixed order (WORDS'), whatever order the rows came in. */
const summary = (counts: Counts) =>
  Object.keys(WORDS)
    .filter((outcome) => (counts[outcome as keyof Counts] ?? 0) > 0)
    .map((outcome) => `${counts[outcome as keyof Counts]} ${WORDS[outcome]}`)
    .join(', ') || 'none';

/** How many rows skipped on purpose (pending, failed…) are listed one by one; failures always are. */
const SKIPPED_LISTED = 50;

function printReport(io: Io, r: ImportReport): void {
  io.out(
    r.dry_run
      ? `Dry run against the original at ${r.source}: nothing was written. Run again with --apply to import.`
      : `Imported from the original at ${r.source}.`,
  );
  io.out(`  providers:   ${summary(r.providers)}`);
  io.out(`  aliases:     ${summary(r.aliases)}`);
  io.out(`  connections: ${summary(r.connections)}`);
  if (r.audit !== undefined) io.out(`  audit:       ${summary(r.audit)}`);
  let skipped = 0;
  for (const row of r.rows) {
    if (row.outcome === 'skipped' && ++skipped > SKIPPED_LISTED) continue;
    const what = `${row.kind} ${row.id}${row.name ? ` (${row.name})` : ''}`;
    const mapped = row.nexus_id ? ` → Nexus id ${row.nexus_id}` : '';
    io.out(`  ${what}: ${WORDS[row.outcome] ?? row.outcome}${mapped}${row.reason ? `: ${row.reason}` : ''}`);
  }
  if (skipped > SKIPPED_LISTED)
    io.out(`  … and ${skipped - SKIPPED_LISTED} more skipped rows (--json lists every row)`);
  if (r.interrupted) io.out('Interrupted: run the same command again to finish.');
}
