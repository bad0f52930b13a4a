import { importHistory } from './audit-step.ts';
import { importConnections } from './connections-step.ts';
import { type ImportDeps, type ImportReport, Tally } from './import.types.ts';
import { OriginalDecryptError, openOriginal } from './original-crypto.ts';
import { describeFailure, importAliases, importProviders } from './providers-step.ts';

/** The given key opens none of the original's tokens: the run stops before writing anything. */
export class WrongKeyError extends Error {
  constructor(checked: number) {
    super(
      `the given --encryption-key does not decrypt the original's tokens (none of the ${checked} checked decrypts): ` +
        "pass the original's ENCRYPTION_KEY exactly as the original was configured with it. Nothing was imported.",
    );
    this.name = 'WrongKeyError';
  }
}

const SAMPLE_PAGE = 200;

/**
 * Before anything is written: the key must open at least one token, or every token the source
 * has is tried and the run stops with WrongKeyError. One token that does not open under a key
 * that opens the others is reported on its own row instead.
 */
async function checkKey(deps: Pick<ImportDeps, 'source' | 'key'>): Promise<void> {
  let checked = 0;
  let after: string | undefined;
  for (;;) {
    const sample = await deps.source.tokenSample(after, SAMPLE_PAGE);
    for (const token of sample) {
      if (token.data === null) continue;
      checked++;
      try {
        openOriginal(deps.key, token.data);
        return;
      } catch (error) {
        if (!(error instanceof OriginalDecryptError)) throw error;
      }
    }
    if (sample.length < SAMPLE_PAGE) break;
    after = sample[sample.length - 1]!.id;
  }
  if (checked > 0) throw new WrongKeyError(checked);
}

/**
 * `nexus import original`: providers, their aliases, connections (and optionally the audit
 * history) from the original's database into Nexus, through the services that own each table.
 * Every step is idempotent, so the whole is resumable and can be re-run to pick up what the
 * original gained since (a cut-over window). With `apply` false nothing is written.
 */
export async function importOriginal(deps: ImportDeps): Promise<ImportReport> {
  await checkKey(deps);
  const tally = new Tally();
  const map = await importProviders(deps, tally, await deps.source.providers());
  await importAliases(deps, tally, await deps.source.aliases(), map);
  let interrupted = await importConnections(deps, tally, map);
  if (deps.withAudit && !interrupted) {
    try {
      interrupted = await importHistory(deps, tally);
      await deps.nexus.audit.flush();
    } catch (error) {
      // What was appended stays; the next run resumes after the newest imported event.
      tally.rows.push({
        kind: 'audit',
        id: 'audit_events',
        outcome: 'failed',
        reason: `appending the history stopped: ${describeFailure(error)}; run again to resume`,
      });
    }
  }
  return {
    dry_run: !deps.apply,
    source: deps.source.where,
    providers: tally.counts.provider,
    aliases: tally.counts.alias,
    connections: tally.counts.connection,
    audit: deps.withAudit ? tally.counts.audit : undefined,
    rows: tally.rows,
    interrupted,
  };
}
